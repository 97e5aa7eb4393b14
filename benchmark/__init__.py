"""coverbench: does a conditional image generator really use its condition?"""

__version__ = "0.1.0"
