"""Fetch a MovieLens release from GroupLens once: stream the zip, check its MD5, unpack it into the cache.

    from modeling_elm.data.movielens.download import download_release
    folder = download_release("ml-1m", Path("~/.cache/elm/movielens").expanduser())  # -> .../movielens/ml-1m

`load_movielens` calls this; use it directly only to fetch without loading. Requests go through huggingface_hub's
shared HTTP client, so proxies and certificates set up for the Hub apply here too, HF_HUB_OFFLINE=1 blocks the
download, and tests swap in a mock transport with `huggingface_hub.set_client_factory`.
"""

import hashlib
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import httpx2
from filelock import FileLock
from huggingface_hub.utils import get_session
from huggingface_hub.utils import tqdm as hub_tqdm

logger = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
# Used only when GroupLens serves no .md5 next to a zip. ml-latest and ml-latest-small are re-released from time to
# time under the same name, so no fixed sum fits them: without a published one they are refused.
KNOWN_MD5 = {
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
}
# A file whose presence marks the folder a release unpacks to, in each of the three layouts.
MARKER_FILES = ("ratings.csv", "ratings.dat", "u.data")
CHUNK_BYTES = 1 << 20


def release_url(name: str) -> str:
    return GROUPLENS_URL.format(name=name)


def download_release(name: str, cache_dir: Path) -> Path:
    """Download and unpack release `name` into `cache_dir / name` unless it is already there; return that folder.

    The zip is written to `<name>.zip.partial` and renamed only once its MD5 matches, so an interrupted or corrupt
    download never passes for a good one; it is deleted once unpacked. Safe when several processes race for it.
    """
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = cache_dir / name
    with FileLock(str(cache_dir / f".{name}.lock")):
        if _has_release(folder):  # another process finished while we waited
            return folder
        archive = cache_dir / f"{name}.zip"
        if not archive.is_file():  # a verified zip survives an interrupted unpack; no need to fetch it again
            _fetch_verified(name, archive)
        unpack_release(archive, folder)
        archive.unlink()
    return folder


def unpack_release(archive: Path, folder: Path) -> None:
    """Extract `archive` and move the folder holding its data files to `folder`, in one rename."""
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-unpacking-"))
    try:
        try:
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(scratch)  # zipfile drops absolute paths and "..": members stay inside `scratch`
        except zipfile.BadZipFile as error:
            raise ValueError(f"{archive} is not a readable zip ({error}); delete it and try again.") from error
        found = [marker.parent for name in MARKER_FILES for marker in scratch.rglob(name)]
        if not found:
            raise ValueError(f"{archive} holds none of {', '.join(MARKER_FILES)}; it is not a MovieLens release.")
        os.replace(min(found, key=lambda p: len(p.parts)), folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _has_release(folder: Path) -> bool:
    return any((folder / name).is_file() for name in MARKER_FILES)


def _fetch_verified(name: str, archive: Path) -> None:
    url = release_url(name)
    expected = _published_md5(url, archive.parent) or KNOWN_MD5.get(name)
    if expected is None:
        raise ValueError(
            f"GroupLens publishes no checksum at {url}.md5 and none is known for {name}, so a download could not be "
            f"verified. Download {url} yourself and pass the zip or its unpacked folder as the source."
        )
    partial = archive.with_name(archive.name + ".partial")
    digest = hashlib.md5()
    logger.info("Downloading MovieLens %s from %s", name, url)
    try:
        with get_session().stream("GET", url) as response, partial.open("wb") as out:
            response.raise_for_status()
            total = int(response.headers.get("Content-Length", 0)) or None
            with hub_tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=archive.name) as bar:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except BaseException as error:  # an interrupted download must not leave a partial file behind
        partial.unlink(missing_ok=True)
        if isinstance(error, (httpx2.HTTPError, ConnectionError)):
            raise _unreachable(url, error, archive.parent) from error
        raise
    if digest.hexdigest() != expected:
        partial.unlink()
        raise ValueError(
            f"The download of {url} is corrupt: its MD5 is {digest.hexdigest()}, GroupLens says {expected}. "
            "Nothing was kept; try again, or download the zip yourself and pass its path as the source."
        )
    os.replace(partial, archive)


def _published_md5(url: str, cache_dir: Path) -> str | None:
    """The MD5 in GroupLens' `<zip>.md5` (either `md5sum` or BSD `MD5 (x) = ...` layout); None when it has none."""
    try:
        response = get_session().get(url + ".md5")
        if response.status_code == 404:
            return None
        response.raise_for_status()
    except (httpx2.HTTPError, ConnectionError) as error:
        raise _unreachable(url + ".md5", error, cache_dir) from error
    found = re.search(r"\b[0-9a-fA-F]{32}\b", response.text)
    return found.group(0).lower() if found else None


def _unreachable(url: str, error: Exception, cache_dir: Path) -> ConnectionError:
    if isinstance(error, httpx2.HTTPStatusError):
        reason = f"HTTP {error.response.status_code}"
    else:
        reason = f"{type(error).__name__}: {error}"
    return ConnectionError(
        f"Could not download {url} ({reason}). Without internet access, download it on another machine and unzip "
        f"it into {cache_dir}, or pass the zip or its unpacked folder as the source."
    )
