"""The compiled parts (everything else is in pyproject.toml): the OpenAI result scanner and
a fast hash of prompt values.

``optional=True``: where no C compiler is available the build goes on without them, and
batchframe uses its pure-Python paths instead (pyarrow's JSON reader for result files,
Python's hash() per value): the same results, slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "batchframe.providers._openai_scan",
            ["src/batchframe/providers/_openai_scan.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "batchframe.prompts._hash",
            ["src/batchframe/prompts/_hash.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)
