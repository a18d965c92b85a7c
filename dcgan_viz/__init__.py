"""dcgan-viz: train DCGANs and measure what they learned."""

__version__ = "0.1.0"
