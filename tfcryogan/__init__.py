"""tfcryogan: pose-free cryo-EM reconstruction (CryoGAN, Multi-CryoGAN) in TensorFlow/Keras."""

__version__ = "0.1.0"
