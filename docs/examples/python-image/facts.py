"""The recipe's example program (docs/implementers.md, "Your image without a registry").

Run inside the image the recipe builds, the way the suite starts a peer's container, it prints
one JSON line with what the container provides, and the modules a peer written in Python
typically needs, so that the test `crates/oneway-cli/tests/image_recipe.rs` can hold the
document to it. Replace it with your peer.
"""

import importlib
import json
import os
import sys


def tmp_writable() -> bool:
    path = "/tmp/oneway-recipe-check"
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write("ok")
        os.remove(path)
        return True
    except OSError:
        return False


modules = ["asyncio", "json", "socket", "ssl", "hashlib", "hmac", "base64", "secrets", "struct"]
missing = []
for name in modules:
    try:
        importlib.import_module(name)
    except ImportError:
        missing.append(name)

print(
    json.dumps(
        {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "cwd": os.getcwd(),
            "tmp_writable": tmp_writable(),
            "role": os.environ.get("ONEWAY_ROLE"),
            "path": os.environ.get("PATH"),
            "python": sys.version.split()[0],
            "missing_modules": missing,
        }
    ),
    flush=True,
)
