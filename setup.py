"""Builds the optional native CPU LSTM kernel (seqlstm/kernels/lstm_cpu.cc); metadata is in
pyproject.toml.

The kernel is a plain shared library loaded with ctypes and registered through `jax.ffi`; it
calls oneDNN's `dnnl_sgemm` from `libdnnl.so.3`, which the runtime dependency `onednn` installs
into `<prefix>/lib`. At build time only the XLA FFI headers (from the `jaxlib` build
requirement) and g++ are needed: the link is made against a stub `libdnnl.so.3` holding the one
symbol, and the library records `<prefix>/lib` as its search path (DT_RPATH, which also serves
libdnnl's own dependencies there). Where the build cannot run (no compiler, another OS or CPU)
the install goes on without it, says why in one line, and seqlstm runs the pure-JAX scan
(`seqlstm.kernels.native.native_reason()` says the same at run time).
"""

import os
import platform
import shutil
import site
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

STUB = """
#include <stdint.h>
int dnnl_sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
               int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  return 0;
}
"""
FLAGS = ["-O3", "-march=x86-64-v3", "-fno-trapping-math", "-fno-math-errno", "-std=c++17"]
FLAGS += ["-ffp-contract=fast", "-pthread"]
FLAGS += ["-fPIC", "-Wno-attributes", "-Wno-return-type"]


def _library_dirs() -> list[str]:
    """Where `pip install onednn` puts libdnnl.so.3: `<prefix>/lib` of this environment, of the
    interpreter it is a venv of, and of a `--user` install."""
    dirs = [os.path.join(p, "lib") for p in (sys.prefix, sys.base_prefix, site.USER_BASE)]
    return list(dict.fromkeys(dirs))


class OptionalBuild(build_ext):
    """Builds the kernel with g++ directly, or skips it with a one-line reason."""

    def run(self):
        for ext in self.extensions:
            try:
                self._build(ext)
            except Exception as error:  # noqa: BLE001 (any failure: install without the kernel)
                print(
                    f"seqlstm: native CPU kernel not built ({error}); the pure-JAX scan runs",
                    file=sys.stderr,
                )

    def _build(self, ext):
        if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
            raise RuntimeError(f"built on Linux x86_64 only, this is {platform.system()}")
        compiler = shutil.which(os.environ.get("CXX", "g++"))
        if compiler is None:
            raise RuntimeError("no C++ compiler (g++) found")
        import jaxlib

        include = os.path.join(os.path.dirname(jaxlib.__file__), "include")
        out = self.get_ext_fullpath(ext.name)
        if self.inplace:
            out = os.path.join(os.path.dirname(__file__), *ext.name.split(".")[:-1])
            out = os.path.join(out, os.path.basename(self.get_ext_filename(ext.name)))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            stub = os.path.join(tmp, "stub.c")
            with open(stub, "w") as f:
                f.write(STUB)
            lib = os.path.join(tmp, "libdnnl.so.3")
            run = lambda cmd: subprocess.run(cmd, check=True, capture_output=True, text=True)
            run([compiler, "-shared", "-fPIC", "-Wl,-soname,libdnnl.so.3", stub, "-o", lib])
            rpath = ":".join(_library_dirs())
            cmd = [compiler, *FLAGS, "-shared", f"-I{include}", *ext.sources, "-o", out]
            cmd += ["-Wl,--no-as-needed", f"-L{tmp}", "-l:libdnnl.so.3"]
            cmd += [f"-Wl,--disable-new-dtags,-rpath,{rpath}"]
            try:
                run(cmd)
            except subprocess.CalledProcessError as error:
                raise RuntimeError(f"g++ failed: {error.stderr.strip()[-300:]}") from None
        print(f"seqlstm: built the native CPU kernel {os.path.basename(out)}", file=sys.stderr)


setup(
    ext_modules=[Extension("seqlstm.kernels._lstm_cpu", ["seqlstm/kernels/lstm_cpu.cc"])],
    cmdclass={"build_ext": OptionalBuild},
)
