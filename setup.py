"""Install text_objseg_tf2, the TF2 / Keras 3 port of text_objseg (Hu et al., ECCV 2016)."""

from setuptools import find_packages, setup

setup(
    name="text_objseg_tf2",
    version="0.1.0",
    description=(
        "Segmentation from Natural Language Expressions (ECCV 2016), "
        "ported to TensorFlow 2 / Keras 3"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["text_objseg_tf2", "text_objseg_tf2.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "numpy",
        "pillow",
        "scikit-image>=0.19",
        "scipy",
        "absl-py",
        "tqdm",
        "h5py",
    ],
    extras_require={"test": ["pytest", "ruff"]},
    entry_points={
        "console_scripts": [
            "text_objseg_predict=text_objseg_tf2.predict:run",
            "text_objseg_convert=text_objseg_tf2.convert:run",
        ]
    },
)
