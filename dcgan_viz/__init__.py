"""dcgan-viz: train DCGANs (Radford, Metz & Chintala, 2015) and measure what they learned.

Recipe::

    from dcgan_viz import load_checkpoint, generate, latents

    bundle = load_checkpoint("checkpoints/rooms64")        # G, D, configs; on the GPU if present
    images = generate(bundle, seed=0, indices=range(16))   # uint8 (16, 64, 64, 3)
    z = latents(bundle.config, seed=0, indices=[17], device=bundle.device)  # "sample 17 of seed 0"
    feats = bundle.D.features(bundle.G(z))                 # {"conv1": (1, 64, 32, 32), ...}

Your own generator (any nn.Module; see docs/own-models.md), through the same analyses::

    from dcgan_viz import wrap_generator, ablate
    bundle = wrap_generator(G, nz=64, layers={"block1": G.block1, "block2": G.block2},
                            sample_z="normal", D=None)          # a Bundle, like load_checkpoint's
    with ablate(bundle.G, {"block2": [3]}):                   # hooks removed on exit
        edited = generate(bundle, seed=0, indices=range(16))

pytorch/examples DCGAN weights: ``dcgan-viz import netG_epoch_24.pth --netD netD_epoch_24.pth --out DIR``
(or ``dcgan_viz.importing.import_checkpoint``) writes a normal checkpoint directory.

Training::

    from dcgan_viz import ModelConfig, TrainConfig, Trainer, DataSpec, load_imageset
    data = load_imageset(DataSpec.parse("rooms:count=5000", size=32))
    Trainer(ModelConfig(image_size=32, ngf=16, ndf=16), TrainConfig(epochs=1), data.spec,
            data.images, "runs/demo").run()
"""

__version__ = "0.1.0"

from .analysis.ablation import ablate
from .checkpoint import Bundle, CheckpointError, load_checkpoint, save_checkpoint
from .instrument import HookedNet, wrap_generator
from .data.spec import DataSpec, ImageSet
from .latents import latents
from .models import Discriminator, Generator, ModelConfig, build_models
from .sampling import generate, generate_from_z
from .train import Trainer, TrainConfig, TrainingStopped

__all__ = [
    "Bundle", "CheckpointError", "HookedNet", "ablate", "wrap_generator", "DataSpec", "Discriminator", "Generator", "ImageSet", "ModelConfig",
    "TrainConfig", "Trainer", "TrainingStopped", "build_models", "generate", "generate_from_z", "latents",
    "load_checkpoint", "load_imageset", "save_checkpoint", "__version__",
]


def __getattr__(name: str):
    if name == "load_imageset":  # imported lazily: the data layer pulls in PIL
        from .data.loading import load_imageset

        return load_imageset
    raise AttributeError(name)
