"""Only what pyproject.toml cannot say: the course's files carried inside the wheel.

`pip install git+https://github.com/v4s-lite/v4s-lite` (Colab) builds a wheel, which holds only packages. So configs/,
data/v4s-lite/ and results/ are mapped to packages under v4s_lite/_course/ and shipped as package data;
v4s_lite.resources finds them there when the package does not sit in a clone. An editable install
(`pip install -e .`) reads them from the repository instead. Everything else is in pyproject.toml.
"""
from setuptools import find_packages, setup

COURSE = {"v4s_lite._course.configs": "configs", "v4s_lite._course.data": "data", "v4s_lite._course.results": "results"}

setup(
    packages=find_packages(include=["v4s_lite", "v4s_lite.*"]) + list(COURSE),
    package_dir=COURSE,
    package_data={
        "v4s_lite._course.configs": ["*.yaml"],
        "v4s_lite._course.data": ["v4s-lite/*", "v4s-lite/**/*"],  # only the shipped model, not generated data/
        "v4s_lite._course.results": ["*.json", "*.md", "*/*"],
    },
)
