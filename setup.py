"""Builds the compiled cores (packets, the tracer's stop loop, correlate, the JSON records, the packet comments); the rest is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("wirecorr._core.packets", ["wirecorr/_core/packets.pyx"], extra_compile_args=["-O2"]),
            Extension("wirecorr._core.tracer", ["wirecorr/_core/tracer.pyx"], extra_compile_args=["-O2"]),
            Extension("wirecorr._core.correlate", ["wirecorr/_core/correlate.pyx"], extra_compile_args=["-O2"]),
            Extension("wirecorr._core.records", ["wirecorr/_core/records.pyx"], extra_compile_args=["-O2"]),
            Extension("wirecorr._core.comments", ["wirecorr/_core/comments.pyx"], extra_compile_args=["-O2"]),
            Extension("wirecorr._core.rows", ["wirecorr/_core/rows.pyx"], extra_compile_args=["-O2"]),
        ],
        language_level=3,
    )
)
