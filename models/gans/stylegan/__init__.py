"""StyleGAN2-style generator (mapping + synthesis) and residual discriminator, pure PyTorch."""

from .discriminator import StyleDiscriminator, minibatch_std
from .generator import StyleGenerator
from .mapping import MappingNetwork
from .synthesis import SynthesisNetwork

__all__ = ["MappingNetwork", "StyleDiscriminator", "StyleGenerator", "SynthesisNetwork", "minibatch_std"]
