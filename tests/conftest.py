"""Settings for the whole test session."""

import rnnlab

# Imported first, rnnlab shortens OpenBLAS's idle spin. If a plugin imported NumPy even
# earlier, rnnlab would warn about the spin at the first parallel loop of whichever test
# comes first; the test about that warning sets the flag itself.
rnnlab._OPENBLAS_SPINS = False
