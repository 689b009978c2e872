"""The one compiled part: aclstm.data._cropresize, optional (aclstm falls back to torch without it)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "aclstm.data._cropresize",
            ["src/aclstm/data/_cropresize.c"],
            extra_compile_args=["-O3"],
            optional=True,  # no C compiler: a warning, and the torch path
        )
    ]
)
