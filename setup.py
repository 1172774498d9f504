"""tfcryogan: pose-free cryo-EM reconstruction (CryoGAN, Multi-CryoGAN) in TensorFlow/Keras."""

import glob

from setuptools import find_packages, setup

setup(
    name="tfcryogan",
    version="0.1.0",
    description="CryoGAN and Multi-CryoGAN: cryo-EM density maps from particle images without "
                "estimating poses, in TensorFlow/Keras, with RELION-compatible physics and I/O.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfcryogan", "tfcryogan.*"]),
    scripts=sorted(glob.glob("bin/*")),
    python_requires=">=3.10,<3.13",
    install_requires=[
        # TensorFlow 2.21 with Keras 3; tf-keras is what tensorflow-probability's Keras parts need.
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        # tf.summary (losses, image grids, volume slices) needs the TensorBoard package.
        "tensorboard>=2.19",
        "tf-keras>=2.21,<2.22",
        "tensorflow-probability>=0.25,<0.26",
        "tensorflow-graphics>=2021.12.3",
        "numpy>=1.26,<3",
        "mrcfile>=1.5,<2",
        "absl-py>=2.1,<3",
        # STAR parsing (RELION 3.0/3.1 blocks, loops, quoting) is what `starfile` does well.
        "starfile>=0.5.13,<0.6",
        # Atomic models -> cryo-EM densities with electron scattering factors.
        "gemmi>=0.7,<0.8",
        # FSC plots and slice montages.
        "matplotlib>=3.8,<4",
        "pandas>=2,<4",
    ],
    extras_require={"test": ["pytest>=8"]},
)
