"""vidrestore: joint deblurring and frame interpolation for video.

Nothing heavy is imported here, so that ``vidrestore --version`` stays instant.
"""

from vidrestore._version import __version__

__all__ = ["__version__"]
