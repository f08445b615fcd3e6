"""The one compiled part: the OpenAI result scanner (everything else is in pyproject.toml).

``optional=True``: where no C compiler is available the build goes on without it, and
batchframe decodes result files with pyarrow's JSON reader instead (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "batchframe.providers._openai_scan",
            ["src/batchframe/providers/_openai_scan.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
