"""Differentiable directional scattering covariances on the sphere, in JAX.

    import s2scat_core
    op = s2scat_core.build(L=64, N=3)          # built once: filters, kernels, quadrature
    cov = op.scatter(flm)                      # Covariances(mean, var, S1, S2, S3, S4)
    norm = op.norm(flm_target)                 # normalisation from a target field
    cov = op.scatter(flm, norm=norm)           # normalised statistics

Same definitions, order and flattening as S2SCAT 0.0.3 (mean, var, S1, P00, C01, C11) and
Mousset et al. 2024. Importing this package enables JAX's 64-bit mode (float64 is the
default precision of the statistics) and caps ducc0 at its x86-64-v3 build, whose results do
not depend on memory placement (``s2scat_core._ducc0_build``).
"""

from . import _ducc0_build  # noqa: F401  (before anything imports ducc0)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from . import harmonics, labels, masks, transforms, wavelets  # noqa: E402
from .labels import counts  # noqa: E402
from .masks import MaskWeights  # noqa: E402
from .scattering import CrossCovariances, Covariances, Scattering, build  # noqa: E402
from .wavelets import j_max  # noqa: E402

__all__ = ["CrossCovariances", "Covariances", "MaskWeights", "Scattering", "build", "counts",
           "harmonics", "j_max", "labels", "masks", "transforms", "wavelets"]
__version__ = "0.1.0"
