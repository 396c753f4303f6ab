"""Cache files that only this user's key could have written: the compiled programs and the sparsity patterns.

A cache is an input that decides which program runs, and CI restores it from places a pull request
can write to (GitLab caches only folders inside the checkout, so a merge request can commit an entry
under the key of one of its own programs). So every entry jaxdiff reads is sealed: an HMAC-SHA256
over what kind of entry it is, its name (the cache key) and its bytes, made with a secret that no
checkout, spec or cache folder holds. An entry whose seal does not verify (planted, copied under
another name, written by another key or by plain JAX) is a miss: computed afresh and replaced.

The secret is ``JAXDIFF_CACHE_KEY`` (a CI secret; empty counts as unset, as GitHub passes a secret a
fork's pull request may not read), else a random key kept in ``$XDG_CONFIG_HOME/jaxdiff/cache-key``
(``~/.config``), created private (0600) on first use and refused when anyone else could read or
replace it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from jaxdiff_cli.atomic import atomic_open, write_new
from jaxdiff_cli.errors import UsageError

MAGIC = b"jaxdiff-sealed-1\n"  # then the 32-byte tag, then the entry's bytes
_TAG = 32
_STREAM = 64 << 20  # bytes: a file larger than this is verified as it streams, before it is read whole
_MIN_SECRET = 16  # characters of JAXDIFF_CACHE_KEY: below this it is a password, not a key
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jaxdiff" / "cache-key"


def cache_secret() -> bytes | None:
    """The key that seals cache entries; None when none can be had (no cache this run, only slower).

    Raises UsageError for a key that would not be secret: JAXDIFF_CACHE_KEY too short, or a key file
    others can read or replace (as ssh refuses such a private key).
    """
    text = os.environ.get("JAXDIFF_CACHE_KEY", "").strip()
    if text:
        if len(text) < _MIN_SECRET:
            raise UsageError(
                f"JAXDIFF_CACHE_KEY has {len(text)} characters, too few to be a secret (at least {_MIN_SECRET})",
                hint="set it from a CI secret made with: openssl rand -hex 32",
            )
        return derive(text.encode())
    path = key_file()
    try:
        return derive(_read_key(path) if path.exists() or path.is_symlink() else _create_key(path))
    except OSError:
        return None  # a read-only home must not stop the run; it only runs slower, as without a cache


def derive(raw: bytes) -> bytes:
    """The sealing key from the secret's text (JAXDIFF_CACHE_KEY's, or the key file's)."""
    return hashlib.sha256(b"jaxdiff cache key\0" + raw).digest()


def _read_key(path: Path) -> bytes:
    info = os.lstat(path)
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif hasattr(os, "getuid") and info.st_uid != os.getuid():
        problem = "belongs to another user"
    elif info.st_mode & 0o077:
        problem = f"can be read or written by others (mode {stat.S_IMODE(info.st_mode):04o})"
    raw = path.read_bytes().strip() if problem is None else b""
    if problem is None and not re.fullmatch(rb"[0-9a-f]{64}", raw):
        problem = "does not hold a key (64 hexadecimal digits)"
    if problem is not None:
        raise UsageError(
            f"the cache key file {path} {problem}",
            hint=f"delete it (jaxdiff makes a new one), or chmod 600 {path}, or set JAXDIFF_CACHE_KEY, or use --no-cache",
        )
    return raw


def _create_key(path: Path) -> bytes:
    """A new random key, written private and atomically; another process's key if it won the race."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = secrets.token_hex(32).encode()
    old = os.umask(0o077)  # the temporary file is private from its first byte
    try:
        write_new(path, raw + b"\n")
    except FileExistsError:
        return _read_key(path)
    finally:
        os.umask(old)
    return raw


def seal(secret: bytes, kind: str, name: str, payload: bytes) -> bytes:
    return MAGIC + _tag(secret, kind, name, payload) + payload


def unseal(secret: bytes, kind: str, name: str, blob: bytes) -> bytes | None:
    """The payload of a sealed entry, or None when its seal is not this key's for this kind and name."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _TAG:
        return None
    tag, payload = blob[len(MAGIC) : len(MAGIC) + _TAG], blob[len(MAGIC) + _TAG :]
    return payload if hmac.compare_digest(tag, _tag(secret, kind, name, payload)) else None


def _tag(secret: bytes, kind: str, name: str, payload: bytes) -> bytes:
    mac = _mac(secret, kind, name)
    mac.update(payload)
    return mac.digest()


def _mac(secret: bytes, kind: str, name: str) -> hmac.HMAC:
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    for part in (kind.encode(), name.encode("utf-8", "surrogateescape")):
        mac.update(len(part).to_bytes(8, "big") + part)  # lengths first: no two (kind, name) run together alike
    return mac


class SealedFolder:
    """A folder of sealed entries of one kind, by name. Best effort: a write that fails is skipped."""

    def __init__(self, folder: Path, secret: bytes, kind: str) -> None:
        self.folder = folder
        self.secret = secret
        self.kind = kind
        self.rejected = 0  # entries found whose seal did not verify (for tests and --debug)

    def path(self, name: str) -> Path:
        # JAX's keys are file-name safe; anything else is hashed, so a name never leaves the folder.
        stem = name if _SAFE_NAME.fullmatch(name) else hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
        return self.folder / f"{stem}.sealed"

    def read(self, name: str) -> bytes | None:
        path = self.path(name)
        try:
            info = os.lstat(path)
            # A large file is verified as it streams before it is read whole: a planted one costs no memory.
            if not stat.S_ISREG(info.st_mode) or (info.st_size > _STREAM and not self._verifies(path, name)):
                self.rejected += 1
                return None
            blob = path.read_bytes()
        except OSError:
            return None
        payload = unseal(self.secret, self.kind, name, blob)
        if payload is None:
            self.rejected += 1
        return payload

    def _verifies(self, path: Path, name: str) -> bool:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC) + _TAG)
            if len(head) < len(MAGIC) + _TAG or not head.startswith(MAGIC):
                return False
            mac = _mac(self.secret, self.kind, name)
            while chunk := f.read(1 << 20):
                mac.update(chunk)
        return hmac.compare_digest(head[len(MAGIC) :], mac.digest())

    def write(self, name: str, payload: bytes) -> None:
        path = self.path(name)
        with contextlib.suppress(OSError):  # the rename replaces a planted link itself, never writes through it
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_open(path) as f:
                f.write(seal(self.secret, self.kind, name, payload))
