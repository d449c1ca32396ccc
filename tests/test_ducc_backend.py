"""Backend ``ducc`` (ducc0 through ``pure_callback``): transforms, adjoints and statistics
against ``precompute``; gradients, ``jit``, ``vmap`` and batches of the full operator."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import s2scat_core
from s2scat_core import transforms
from conftest import random_full, random_half, rel_err

SPINS = [0, 1, -1, 2, -2, 3, -3]


@pytest.fixture(params=["tables", "per-map"])
def legendre_path(request, monkeypatch):
    """Run a test through both Legendre paths: tables (``L <= TABLE_MAX``) and ducc0 calls."""
    from s2scat_core.transforms.ducc import legendre

    monkeypatch.setattr(legendre, "TABLE_MAX", 32 if request.param == "tables" else 0)
    return request.param


@functools.lru_cache(maxsize=None)
def backends(L, dtype="float64"):
    return {mode: transforms.get(mode)([L], SPINS, np.dtype(dtype)) for mode in ("precompute", "ducc")}


@functools.lru_cache(maxsize=None)
def operator(L, N, J_min, reality, mode, isotropic, delta_j, same_scale=False):
    return s2scat_core.build(L, N, J_min, reality=reality, mode=mode, isotropic=isotropic,
                             delta_j=delta_j, same_scale=same_scale)


def spin_coefficients(L, spin, batch, seed=0):
    """Random valid spin-``spin`` coefficients ``batch + (L, 2L-1)`` (zero for ``l < |spin|``)."""
    n = int(np.prod(batch))
    flm = np.stack([random_full(L, seed + i) for i in range(n)]).reshape(batch + (L, 2 * L - 1))
    flm[..., :abs(spin), :] = 0
    return flm


def halves(L, batch, seed=0):
    n = int(np.prod(batch))
    return np.stack([random_half(L, seed + i) for i in range(n)]).reshape(batch + (L, L))


def random_maps(L, batch, seed=0):
    return np.random.default_rng(seed).standard_normal(batch + (L, 2 * L - 1))


def vjp_against(fn, x, seed=1):
    """``(f(x), vjp(f)(ct))`` for a fixed random cotangent ``ct`` of ``f(x)``'s shape and dtype."""
    y, pullback = jax.vjp(fn, jnp.asarray(x))
    rng = np.random.default_rng(seed)
    ct = rng.standard_normal(y.shape) + (1j * rng.standard_normal(y.shape) if jnp.iscomplexobj(y) else 0)
    return y, pullback(jnp.asarray(ct, y.dtype))[0]


# ---------------------------------------------------------------------------- the transforms
@pytest.mark.parametrize("L", [7, 16, 33])
def test_ducc_grid_is_the_gl_grid(L):
    from s2scat_core.transforms.ducc.legendre import _grid

    kw, weights = _grid(L)
    np.testing.assert_allclose(kw["theta"], transforms.gl_thetas(L), rtol=0, atol=1e-14)
    np.testing.assert_allclose(weights, transforms.gl_weights(L), rtol=1e-13, atol=0)


@pytest.mark.parametrize("batch", [(), (2, 3)])
@pytest.mark.parametrize("spin", SPINS)
def test_synthesis_and_its_vjp_equal_precompute(spin, batch):
    L = 12
    alm = spin_coefficients(L, spin, batch)
    ref, ref_ct = vjp_against(lambda a: backends(L)["precompute"].synthesis(a, L, spin), alm)
    out, out_ct = vjp_against(lambda a: backends(L)["ducc"].synthesis(a, L, spin), alm)
    assert out.shape == batch + (L, 2 * L - 1) and out.dtype == jnp.complex128
    assert rel_err(out, ref) < 1e-12
    assert rel_err(out_ct, ref_ct) < 1e-12


@pytest.mark.parametrize("L", [12, 17])
@pytest.mark.parametrize("batch", [(), (2, 3)])
def test_real_synthesis_and_analysis_and_their_vjps_equal_precompute(L, batch):
    pre, ducc = backends(L)["precompute"], backends(L)["ducc"]
    half = halves(L, batch)
    ref, ref_ct = vjp_against(lambda a: pre.synthesis_real(a, L), half)
    out, out_ct = vjp_against(lambda a: ducc.synthesis_real(a, L), half)
    assert out.shape == batch + (L, 2 * L - 1) and out.dtype == jnp.float64
    assert rel_err(out, ref) < 1e-12 and rel_err(out_ct, ref_ct) < 1e-12

    f = random_maps(L, batch)
    ref, ref_ct = vjp_against(lambda x: pre.analysis_real(x, L), f)
    out, out_ct = vjp_against(lambda x: ducc.analysis_real(x, L), f)
    assert out.shape == batch + (L, L) and out.dtype == jnp.complex128
    assert rel_err(out, ref) < 1e-12 and rel_err(out_ct, ref_ct) < 1e-12


@pytest.mark.parametrize("L, B", [(12, 5), (17, 1), (17, 17)])
def test_analysis_to_a_lower_bandlimit_is_the_truncated_analysis(L, B, legendre_path):
    """``analysis_real(f, L, B)`` (moduli read only to the band-limit the second layer uses):
    the ``l, m < B`` corner of the full analysis, on non-band-limited maps, with its VJP."""
    pre, ducc = backends(L)["precompute"], backends(L)["ducc"]
    f = random_maps(L, (2,), seed=3)
    full = np.asarray(pre.analysis_real(f, L))
    ref, ref_ct = vjp_against(lambda x: pre.analysis_real(x, L, B), f)
    out, out_ct = vjp_against(lambda x: ducc.analysis_real(x, L, B), f)
    assert out.shape == ref.shape == (2, B, B)
    assert rel_err(ref, full[:, :B, :B]) < 1e-14
    assert rel_err(out, ref) < 1e-12 and rel_err(out_ct, ref_ct) < 1e-12
    recursive = transforms.get("recursive")([L], [0])
    assert rel_err(recursive.analysis_real(f, L, B), ref) < 1e-12


def test_transforms_under_jit_and_vmap_and_float32():
    L = 12
    ducc = backends(L)["ducc"]
    alm = spin_coefficients(L, 2, (3,))
    direct = ducc.synthesis(alm, L, -2)
    mapped = jax.jit(jax.vmap(lambda b, a: b.synthesis(a, L, -2), in_axes=(None, 0)))(ducc, alm)
    assert rel_err(mapped, direct) < 1e-14
    f = random_maps(L, (2, 3))
    nested = jax.vmap(jax.vmap(lambda x: ducc.analysis_real(x, L)))(f)
    assert rel_err(nested, ducc.analysis_real(f, L)) < 1e-14

    single = backends(L, "float32")["ducc"]
    out = single.synthesis(alm, L, -2)
    assert out.dtype == jnp.complex64 and rel_err(out, direct) < 1e-5
    half = halves(L, ())
    assert single.synthesis_real(half, L).dtype == jnp.float32
    assert single.analysis_real(f, L).dtype == jnp.complex64
    grad = jax.grad(lambda x: jnp.sum(single.analysis_real(x, L).real))(jnp.asarray(f, jnp.float32))
    assert grad.dtype == jnp.float32


@pytest.mark.parametrize("spin, grad_only", [(0, False), (1, False), (2, False), (1, True), (3, True)])
def test_legendre_tables_equal_ducc_calls(spin, grad_only, monkeypatch):
    """The tabulated small-L Legendre step and its adjoint equal one ducc0 call per map."""
    from s2scat_core.transforms.ducc import legendre

    L, rng = 12, np.random.default_rng(spin)
    n_in, n_out = (1 if spin == 0 or grad_only else 2), (2 if spin else 1)
    alm = np.tril(rng.standard_normal((3, n_in, L, L))) * (1 + 1j)
    leg = rng.standard_normal((3, n_out, L, L)) + 1j * rng.standard_normal((3, n_out, L, L))
    out = {}
    for table_max in (32, 0):
        monkeypatch.setattr(legendre, "TABLE_MAX", table_max)
        out[table_max] = (legendre._alm2leg(alm, spin, grad_only=grad_only),
                          legendre._leg2alm(leg.copy(), spin, grad_only=grad_only))
    for tabulated, called in zip(out[32], out[0]):
        assert tabulated.shape == called.shape
        assert rel_err(tabulated, called) < 1e-13


@pytest.mark.parametrize("spin, grad_only", [(0, False), (2, True)])
def test_m_blocks_on_the_pool_equal_one_ducc_call(spin, grad_only, monkeypatch):
    """From ``SPLIT_FROM`` rings each map's transform is cut into ``m`` blocks run on the host
    workers; forward and adjoint equal one whole-range ducc0 call per map."""
    from s2scat_core.transforms.ducc import legendre

    L, rng = 40, np.random.default_rng(7)
    n_in, n_out = (1 if spin == 0 or grad_only else 2), (2 if spin else 1)
    alm = np.tril(rng.standard_normal((3, n_in, L, L))) * (1 + 1j)
    leg = rng.standard_normal((3, n_out, L, L)) + 1j * rng.standard_normal((3, n_out, L, L))
    out = {}
    for split_from in (L, 10**6):
        monkeypatch.setattr(legendre, "SPLIT_FROM", split_from)
        legendre._blocks.cache_clear()
        blocks = legendre._blocks(L, L)
        assert len(blocks) == (min(legendre._NTHREADS, L) if split_from == L else 1)
        covered = np.concatenate([np.arange(L)[m] for m, _ in blocks])
        assert np.array_equal(covered, np.arange(L))
        out[split_from] = (legendre._alm2leg(alm, spin, grad_only=grad_only),
                           legendre._leg2alm(leg.copy(), spin, grad_only=grad_only))
    legendre._blocks.cache_clear()
    for split, whole in zip(out[L], out[10**6]):
        assert rel_err(split, whole) < 1e-14


def test_host_pool_products_and_passes_equal_numpy():
    from s2scat_core.transforms.ducc import host_threads

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 200_000))  # split from 4 MB
    out = np.empty((5, 200_000))
    assert np.allclose(host_threads.matmul_columns(a, b, out), a @ b, rtol=1e-13, atol=1e-12)
    x = rng.standard_normal((6, 300, 400))
    y = x.copy()
    host_threads.by_rows(lambda o: np.abs(o, out=o), y)
    assert np.array_equal(y, np.abs(x))
    assert host_threads.run([lambda i=i: i * i for i in range(7)]) == [i * i for i in range(7)]


def test_weighing_rows_in_place_makes_no_copy_of_them():
    import tracemalloc

    from s2scat_core.transforms.ducc import real_wavelets

    L = 32
    rng = np.random.default_rng(4)
    rows = rng.standard_normal((3, 40, L, L)) + 1j * rng.standard_normal((3, 40, L, L))
    before = rows.copy()
    second = rows[:, :30].reshape(3, 2, 3, 5, L, L)  # the second layer's part, as in layers.py
    factors = real_wavelets._ring_factors(L, rows.dtype)
    tracemalloc.start()
    try:
        real_wavelets._weigh(second, L)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < second.nbytes / 8, peak  # NumPy's in-place multiply alone copies all of it
    want = before[:, :30] * factors
    want[..., 0] = want[..., 0].real
    assert np.array_equal(rows[:, :30], want)
    assert np.array_equal(rows[:, 30:], before[:, 30:])


def test_calls_launched_in_batches_all_run_and_their_errors_surface():
    """``schedule._Calls``: calls launched on the pool in several batches (the workers of the
    first done before the second) all run once; an error in one is raised by ``run``."""
    from s2scat_core.transforms.ducc import schedule

    ran = []

    def call(i, nthreads, **_):
        if i < 0:
            raise RuntimeError("ducc0 failed")
        ran.append(i)

    def calls_of(ids):
        return [functools.partial(call, i, theta=np.zeros(4), mval=np.arange(4, dtype=np.uintp),
                                  lmax=3, spin=0) for i in ids]

    calls = schedule._Calls()
    calls += calls_of(range(3))
    calls.launch()
    for worker in calls._workers:
        worker.result()
    calls += calls_of(range(3, 5))
    calls.launch()
    calls += calls_of(range(5, 7))
    calls.run()
    assert sorted(ran) == list(range(7)) and not calls
    calls += calls_of([7, -1, 8])
    calls.launch()
    with pytest.raises(RuntimeError, match="ducc0 failed"):
        calls.run()


def test_lockstep_shared_out_gives_the_results_of_the_sequential_one():
    """``schedule._lockstep`` with ``sizes``: the first ``k`` generators advance side by side on the
    calling thread and the pool (each round, in groups of about equal size), the rest in the
    calling thread; every generator sees its rounds in order and the results are those of the
    sequential lockstep. A ``run`` inside a shared task runs inline (its cores are busy)."""
    import threading
    import time

    from s2scat_core.transforms.ducc import host_threads, schedule

    def kernel(i, rounds, seen):
        for r in range(rounds):
            seen.append((i, r, threading.get_ident(), host_threads.cores()))
            assert host_threads.run([lambda: i, lambda: -i]) == [i, -i]
            time.sleep(0.02)  # long enough for an idle worker to start its group
            yield
        return i * 10 + rounds

    def drive(sizes):
        seen = []
        gens = [kernel(i, rounds, seen) for i, rounds in enumerate([2, 3, 1, 2, 0])]
        lock = schedule._lockstep(gens, launch=(3, schedule._Calls()), sizes=sizes)
        yields = 0
        while True:
            try:
                next(lock)
                yields += 1
            except StopIteration as stop:
                return stop.value, yields, seen

    serial, yields, seen = drive(None)
    shared, shared_yields, shared_seen = drive([5, 1, 4, 9, 9])
    assert shared == serial == [2, 13, 21, 32, 40] and shared_yields == yields == 3
    for i in range(5):
        assert [r for j, r, _, _ in shared_seen if j == i] == [r for j, r, _, _ in seen if j == i]
    threads = {t for i, _, t, _ in shared_seen if i < 3}
    assert threads <= {threading.get_ident()} | {t.ident for t in host_threads.pool()._threads}
    if host_threads.THREADS > 1:
        assert threading.get_ident() in threads and len(threads) > 1
        assert all(c == 1 for i, _, _, c in shared_seen if i < 3)
    groups = schedule._share([0, 1, 2, 3], [5, 1, 4, 9])
    assert sorted(sum(groups, [])) == [0, 1, 2, 3] and len(groups) == min(host_threads.THREADS, 4)
    if host_threads.THREADS == 2:
        assert groups == [[3, 1], [0, 2]]  # loads 10 and 9


def test_host_pool_starts_all_its_workers_and_runs_tasks_side_by_side():
    """``host_threads.pool()`` has ``THREADS - 1`` live workers from the start (the calling
    thread is the last), and ``run`` runs its tasks at the same time: with two cores, each of
    two tasks waits for the other."""
    import threading

    from s2scat_core.transforms.ducc import host_threads

    pool = host_threads.pool()
    assert len(pool._threads) == max(1, host_threads.THREADS - 1)
    if host_threads.THREADS > 1:
        both = threading.Barrier(2, timeout=10)
        # BrokenBarrierError unless the two run at once
        assert sorted(host_threads.run([both.wait, both.wait])) == [0, 1]


def test_host_run_takes_back_a_task_no_worker_has_started():
    """``run`` while every worker is busy with earlier work (a round's ducc0 calls): the calling
    thread, once free, runs the tasks still queued itself instead of waiting for a worker
    (it used to wait, leaving a core idle); the results are in order and each task runs once."""
    import threading

    from s2scat_core.transforms.ducc import host_threads

    if host_threads.THREADS == 1:
        pytest.skip("one core: run has no workers")
    pool = host_threads.pool()
    release = threading.Event()
    busy = [pool.submit(release.wait, 30) for _ in range(host_threads.THREADS - 1)]
    try:
        ran = []

        def task(i):
            ran.append((i, threading.get_ident()))
            return i * i

        done = []
        caller = threading.Thread(target=lambda: done.append(
            host_threads.run([functools.partial(task, i) for i in range(3)])))
        caller.start()
        caller.join(timeout=10)
        assert not caller.is_alive(), "run waited for a worker that was busy"
        assert done == [[0, 1, 4]]
        assert sorted(i for i, _ in ran) == [0, 1, 2]
        assert {t for _, t in ran} == {caller.ident}
    finally:
        release.set()
        for b in busy:
            b.result()


def _pool_squares():
    from s2scat_core.transforms.ducc import host_threads

    return host_threads.run([lambda i=i: i * i for i in range(4)])


def test_host_pool_works_in_a_forked_child():
    """A child made by ``fork`` after the parent started the pool gets a pool of its own
    (the parent's worker threads do not exist there: reusing their executor would hang)."""
    import multiprocessing
    import warnings

    assert _pool_squares() == [0, 1, 4, 9]  # the parent's pool exists now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX warns that fork() and threads do not mix
        with multiprocessing.get_context("fork").Pool(1) as workers:
            assert workers.apply_async(_pool_squares).get(timeout=60) == [0, 1, 4, 9]


def fused_cases():
    for N in (1, 2, 3, 4):
        for L in (8, 20):
            yield N, L


@pytest.mark.parametrize("N, L", list(fused_cases()))
def test_fused_real_wavelets_equal_the_spin_transforms(N, L, legendre_path):
    """ducc's one-callback wavelet maps (and ring Fourier coefficients) at a scale equal the
    generic composition of spin transforms on precompute: values, VJP, vmap; Im f_l0 ignored."""
    from s2scat_core import wavelets
    from s2scat_core.transforms import directional

    psi, _ = wavelets.filters(L, N)
    j = wavelets.j_max(L) - 1
    Lj = wavelets.scale_bandlimit(L, j)
    h = jnp.asarray(directional.harmonic_weights(psi, j, N, Lj))
    spins = [-int(n) for n in wavelets.directions(N) if n > 0]
    pre = transforms.get("precompute")([Lj], spins)
    ducc = transforms.get("ducc")([Lj], spins)
    half = halves(Lj, (2, 3))
    half[..., 0] += 0.5j  # not part of a real field: must be ignored
    x = jnp.asarray(half)
    for method in ("wavelets_real", "wavelets_real_fourier"):
        # the Fourier form is a tuple of 2N-1 arrays: stacked here, direction first
        def run(backend, a):
            out = getattr(backend, method)(a, h, N)
            return jnp.stack(out) if isinstance(out, tuple) else out

        ref, ref_vjp = vjp_against(lambda a: run(pre, directional.real_half(a)), x)
        out, out_vjp = vjp_against(lambda a: run(ducc, a), x)
        assert out.shape == ref.shape
        assert rel_err(out, ref) < 1e-12 and rel_err(out_vjp, ref_vjp) < 1e-12, method
        mapped = jax.vmap(lambda a: run(ducc, a))(x)
        assert rel_err(mapped, ref if method == "wavelets_real" else jnp.moveaxis(ref, 1, 0)) < 1e-13


@pytest.mark.parametrize("N", [1, 2, 3, 4])
def test_two_layers_components_give_the_statistics_of_the_default_directions(N, legendre_path):
    """ducc's ``two_layers`` returns each scale's layers by the Gram matrix of their components
    (``base.Mixed``: the second layer's, then the first layer's), keeping the rows on the host;
    its S2, S3 and S4 (``covariances.scale_statistics``) and means equal those of the default
    composition on precompute (``base.Layers``, directions): values, VJP, and ``vmap``
    against the batch axis."""
    from s2scat_core import covariances as cov
    from s2scat_core import wavelets
    from s2scat_core.transforms import directional
    from s2scat_core.transforms.base import Layers, Mixed

    L = 16
    psi, _ = wavelets.filters(L, N)
    scales = range(wavelets.j_max(L) - 2, wavelets.j_max(L) + 1)
    Ls = [wavelets.scale_bandlimit(L, j) for j in scales]
    hs = tuple(jnp.asarray(directional.harmonic_weights(psi, j, N, Lj)) for j, Lj in zip(scales, Ls))
    spins = [-int(n) for n in wavelets.directions(N) if n > 0]
    backends = {mode: transforms.get(mode)(Ls, spins) for mode in ("precompute", "ducc")}
    pairs = ((0, (1, 2)), (1, (2,)))
    partners = dict(pairs)
    bandlimits = (1, Ls[0], Ls[1])  # |W_i| is read to the largest L_i1 it pairs with

    def run(backend, x):
        layers, means = backend.two_layers(directional.real_half(x), hs, N, bandlimits, pairs)
        kind = Mixed if backend is backends["ducc"] else Layers
        assert all(isinstance(layer, kind) for layer in layers)
        flat = [m.real.ravel() for m in means]
        for i, layer in enumerate(layers):
            stats = functools.partial(cov.scale_statistics, A=len(partners.get(i, ())))
            axes = Mixed(0, None) if kind is Mixed else 0  # the mixing matrix is shared
            for _ in x.shape[:-2]:
                stats = jax.vmap(stats, in_axes=(axes,))
            flat += [s.ravel() for s in stats(layer) if s is not None]
        return jnp.concatenate(flat)

    x = jnp.asarray(halves(L, (2,)))
    ref, ref_vjp = jax.jit(lambda x: vjp_against(functools.partial(run, backends["precompute"]), x))(x)
    out, out_vjp = vjp_against(functools.partial(run, backends["ducc"]), x)
    assert rel_err(out, ref) < 1e-12 and rel_err(out_vjp, ref_vjp) < 1e-12
    mapped = jax.vmap(functools.partial(run, backends["ducc"]))(x)
    assert rel_err(mapped, jnp.stack([run(backends["ducc"], a) for a in x])) < 1e-13


# ---------------------------------------------------------------------------- the statistics
def field(L, reality, seed=1):
    return random_half(L, seed, spectrum_slope=1.0) if reality else random_full(L, seed)


def assert_statistics_agree(L, N, J_min, reality, isotropic, delta_j, normalised, same_scale=False):
    ducc = operator(L, N, J_min, reality, "ducc", isotropic, delta_j, same_scale)
    pre = operator(L, N, J_min, reality, "precompute", isotropic, delta_j, same_scale)
    flm = field(L, reality)
    norm = pre.norm(field(L, reality, seed=2)) if normalised else None
    if normalised:
        assert rel_err(ducc.norm(flm), pre.norm(flm)) < 1e-10
    out, ref = ducc.scatter(flm, norm), pre.scatter(flm, norm)
    for name, a, b in zip(ref._fields, out, ref):
        assert a.shape == b.shape, name
        assert rel_err(a, b) < 1e-10, name


FAST = [  # L, N, J_min, reality, isotropic, delta_j, normalised
    (16, 3, 0, True, False, None, False),
    (12, 2, 1, False, True, None, True),
    (16, 4, 2, True, False, 1, True),
    (12, 1, 0, False, False, 2, False),
]


@pytest.mark.parametrize("L, N, J_min, reality, isotropic, delta_j, normalised", FAST)
def test_statistics_equal_precompute(L, N, J_min, reality, isotropic, delta_j, normalised,
                                     legendre_path):
    assert_statistics_agree(L, N, J_min, reality, isotropic, delta_j, normalised)


@pytest.mark.parametrize("L, N, J_min, reality, isotropic, delta_j, normalised", [
    (16, 3, 1, True, False, None, True), (12, 2, 0, False, True, 2, False)])
def test_same_scale_statistics_equal_precompute(L, N, J_min, reality, isotropic, delta_j,
                                                normalised, legendre_path):
    assert_statistics_agree(L, N, J_min, reality, isotropic, delta_j, normalised, same_scale=True)


SLOW = [case for case in itertools.product([12, 16, 24, 32], [1, 2, 3, 4], [0, 2], [True, False])
        if case[2] < s2scat_core.j_max(case[0])]


@pytest.mark.slow
@pytest.mark.parametrize("L, N, J_min, reality", SLOW)
def test_statistics_equal_precompute_grid(L, N, J_min, reality):
    # isotropic / delta_j / normalised cycle with the case so the grid covers each combination.
    k = SLOW.index((L, N, J_min, reality))
    isotropic, delta_j, normalised = bool(k % 2), [None, 1, 2][k % 3], bool((k // 2) % 2)
    assert_statistics_agree(L, N, J_min, reality, isotropic, delta_j, normalised)


# ---------------------------------------------------------------------------- autodiff, batches
def weighted_sum(op, norm):
    rng = np.random.default_rng(0)
    weights = [jnp.asarray(rng.standard_normal(n)) for n in op.counts.values()]

    def f(x):
        return sum(jnp.sum(w * jnp.ravel(s)) for w, s in zip(weights, op.scatter(x, norm)))
    return f


def test_float32_statistics_and_gradient_are_close_to_float64():
    """``dtype="float32"`` runs the host layers in single precision (complex64 components,
    cotangents and gradient) and stays close to the float64 operator."""
    L = 16
    flm = field(L, True)
    single = s2scat_core.build(L, 3, mode="ducc", dtype="float32")
    double = operator(L, 3, 0, True, "ducc", False, None)
    for a, b in zip(single.scatter(flm), double.scatter(flm)):
        assert a.dtype == jnp.float32 and rel_err(a, b) < 1e-4
    grads = [jax.grad(lambda x, op=op: jnp.sum(op.scatter(x).S4))(jnp.asarray(flm, dtype))
             for op, dtype in ((single, jnp.complex64), (double, jnp.complex128))]
    assert grads[0].dtype == jnp.complex64 and rel_err(grads[0], grads[1]) < 1e-3


@pytest.mark.parametrize("reality, normalised", [(True, True), (False, False)])
def test_reverse_mode_gradients(reality, normalised, legendre_path):
    L = 8
    op = operator(L, 2, 1, reality, "ducc", False, None)
    mask = np.tril(np.ones((L, L))) if reality else (random_full(L) != 0)
    x = jnp.asarray((field(L, reality, seed=5) + 0.3) * mask)  # keep |W| away from its kink at 0
    norm = op.norm(field(L, reality, seed=9)) if normalised else None
    check_grads(weighted_sum(op, norm), (x,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    if reality:
        pre = operator(L, 2, 1, reality, "precompute", False, None)
        assert rel_err(jax.grad(weighted_sum(op, norm))(x), jax.grad(weighted_sum(pre, norm))(x)) < 1e-10


def test_vjp_without_the_rows_kept_on_the_host_computes_them_again(monkeypatch):
    """The VJP reads the rows its forward pass left on the host (``kept._Kept``); once they are
    gone (the VJP run a second time, or more forward passes in between than are kept) it
    computes the forward pass again from its inputs: the same cotangent either way."""
    from s2scat_core.transforms.ducc import kept

    found = []
    take = kept._KEPT.take
    monkeypatch.setattr(kept._KEPT, "take", lambda ticket: found.append(take(ticket)) or found[-1])
    L = 16
    op = operator(L, 3, 0, True, "ducc", False, None)
    f = weighted_sum(op, op.norm(field(L, True, seed=3)))
    x = jnp.asarray(field(L, True))
    _, vjp = jax.vjp(f, x)
    first = vjp(1.0)[0]
    again = vjp(1.0)[0]  # its entry was taken by the first call
    later = [jax.vjp(f, x)[1] for _ in range(kept._Kept.KEEP + 1)]
    evicted = later[0](1.0)[0]
    kept = later[-1](1.0)[0]
    assert float(jnp.max(jnp.abs(first))) > 0
    assert [entry is not None for entry in found] == [True, False, False, True]
    for other in (again, evicted, kept):
        assert rel_err(other, first) < 1e-14
    pre = operator(L, 3, 0, True, "precompute", False, None)
    assert rel_err(jax.grad(weighted_sum(pre, pre.norm(field(L, True, seed=3))))(x), first) < 1e-10


def test_kept_buffers_go_back_only_when_no_view_is_left(monkeypatch):
    from s2scat_core.transforms.ducc import buffers

    monkeypatch.setattr(buffers, "_SHELF", buffers._Shelf())
    monkeypatch.setattr(buffers, "MIN_BYTES", 1000)
    monkeypatch.setattr(buffers, "KEEP_BYTES", 5000)
    monkeypatch.delenv("S2SCAT_KEEP_MALLOC", raising=False)
    assert buffers.empty((10,), np.float64).base is None  # 80 B: plain NumPy
    a = buffers.empty((4, 100), np.complex64)  # 3200 B: from the shelf
    assert a.shape == (4, 100) and a.dtype == np.complex64 and a.flags.c_contiguous
    a[:] = 1 + 2j
    view, where = a[1:, ::3].T, a.ctypes.data
    del a
    assert buffers._SHELF.free_bytes() == 0  # the view still uses the block
    b = buffers.empty((4, 100), np.complex64)
    assert b.ctypes.data != where
    del view
    assert buffers._SHELF.free_bytes() == 3200
    c = buffers.empty((2, 1400), np.uint8)  # 2800 B: fits the free 3200 B block, reused
    assert c.ctypes.data == where and buffers._SHELF.free_bytes() == 0
    del b, c  # 6400 B free: over KEEP_BYTES, the older block is let go
    assert buffers._SHELF.free_bytes() == 3200
    x = np.arange(24.0).reshape(4, 6)[:, ::2]
    y = buffers.contiguous(x)
    assert y.flags.c_contiguous and np.array_equal(y, x)
    assert buffers.contiguous(y) is y
    monkeypatch.setenv("S2SCAT_KEEP_MALLOC", "1")
    assert buffers.empty((4, 100), np.complex64).base is None


_FAULTS = """
import resource, threading
import numpy as np
from s2scat_core._malloc import keep_freed_memory
applied, faults = keep_freed_memory(), []
def work():  # two 50 MB arrays at a time, more than one 64 MB heap of a thread's arena
    for i in range(8):
        if i == 2:
            start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a, b = np.ones(50 << 17), np.ones(50 << 17)
        del a, b
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(applied, faults[0])
"""


def test_a_threads_freed_heaps_are_kept_for_the_next_call():
    """glibc deletes a thread's heap once it is free unless ``M_TOP_PAD`` covers it, so arrays
    that come and go were fresh pages every call (thousands of page faults here without the
    pad); with :func:`s2scat_core._malloc.keep_freed_memory` the same memory is used again."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True,
                         check=True).stdout.split()
    if out[0] != "True":
        pytest.skip("the settings were not applied (not glibc, or S2SCAT_KEEP_MALLOC=1)")
    assert int(out[1]) < 200, out


def test_gradients_with_every_host_array_from_kept_buffers_are_the_same(monkeypatch):
    """Blocks handed out again while a kernel still read them would change the gradients: with
    every array of the backend's kept kinds from the shelf, repeated gradients equal those
    computed without it, bit for bit."""
    from s2scat_core.transforms.ducc import buffers

    L = 16
    op = operator(L, 3, 0, True, "ducc", False, None)
    f = weighted_sum(op, op.norm(field(L, True, seed=3)))
    xs = jnp.asarray(np.stack([field(L, True, seed=s) for s in (1, 2, 3)]))
    grad = jax.jit(jax.vmap(jax.grad(f)))
    monkeypatch.setenv("S2SCAT_KEEP_MALLOC", "1")
    plain = np.asarray(grad(xs))
    monkeypatch.setenv("S2SCAT_KEEP_MALLOC", "0")
    monkeypatch.setattr(buffers, "_SHELF", buffers._Shelf())
    monkeypatch.setattr(buffers, "MIN_BYTES", 0)
    for _ in range(3):
        assert np.array_equal(np.asarray(grad(xs)), plain)
    assert buffers._SHELF.free_bytes() > 0  # they were used, and given back


@pytest.mark.parametrize("reality", [True, False])
def test_vmap_and_batch_axis_equal_the_loop(reality):
    L = 8
    op = operator(L, 2, 1, reality, "ducc", False, None)
    batch = jnp.stack([jnp.asarray(field(L, reality, seed=s)) for s in range(3)])
    loop = [op.scatter(x) for x in batch]
    mapped = jax.jit(jax.vmap(lambda op, x: op.scatter(x), in_axes=(None, 0)))(op, batch)
    batched = op.scatter(batch)
    for i, one in enumerate(loop):
        for name, ref, a, b in zip(one._fields, one, mapped, batched):
            assert rel_err(a[i], ref) < 1e-13 and rel_err(b[i], ref) < 1e-13, name
    if reality:
        grad = jax.grad(weighted_sum(op, None))
        grads = jax.vmap(grad)(batch)
        for i, x in enumerate(batch):
            assert rel_err(grads[i], grad(x)) < 1e-13


@pytest.mark.parametrize("reality", [True, False])
def test_spins_at_or_above_a_scale_band_limit(reality):
    """N = 5 at J_min = 1: scale 1 has L_j = 4 and wavelet spins up to 4, which vanish there."""
    L = 32
    x = random_half(L, seed=4) if reality else random_full(L, seed=4)
    ref = s2scat_core.build(L, 5, 1, reality=reality, mode="precompute").scatter(x)
    out = s2scat_core.build(L, 5, 1, reality=reality, mode="ducc").scatter(x)
    for a, b in zip(out, ref):
        assert rel_err(a, b) < 1e-10
