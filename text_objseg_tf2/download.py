"""Resumable downloads of the release's files (ReferIt data, VGG params, trained models).

A file is fetched into `<dest>.part` and renamed to `<dest>` only once its size (and
SHA-256, where known) checks out; an interrupted transfer resumes from the `.part` file with
an HTTP Range request. Archives are unpacked into a hidden temporary folder next to the
destination and moved into place, then marked done so a rerun skips them.

When a host is dead (the release's www.eecs.berkeley.edu URLs may be) or a file is gone,
the error is one line that names the URL and says how to use a mirror: `--url` (one file's
full URL), `--base_url`, or the TEXT_OBJSEG_MIRROR environment variable (a base URL that
replaces the folder part of every default URL; the file name is appended).

Only the standard library is used (urllib, tarfile, zipfile); no network at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import posixpath
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from tqdm import tqdm

MIRROR_ENV = "TEXT_OBJSEG_MIRROR"
USER_AGENT = "text_objseg_tf2-downloader"

# The release's hosts and the commit of ronghanghu/text_objseg whose exp-referit/data
# files the release used (they are unchanged since the commit adding the split files).
BERKELEY_REFERIT_BASE = "http://www.eecs.berkeley.edu/~ronghang/projects/cvpr16_text_obj_retrieval"
BERKELEY_MODELS_BASE = "http://www.eecs.berkeley.edu/~ronghang/projects/text_objseg/models"
RELEASE_COMMIT = "be664d66c72319363691628958727124ea38cad8"
GITHUB_DATA_BASE = ("https://raw.githubusercontent.com/ronghanghu/text_objseg/"
                    f"{RELEASE_COMMIT}/exp-referit/data")


class DownloadError(RuntimeError):
    """A download failed; the message is a single line meant for the user."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of the release: its default URL and what is known about it."""

    url: str
    size: int | None = None
    sha256: str | None = None
    archive: bool = False  # unpack after download (tar.gz / zip)

    @property
    def name(self):
        return posixpath.basename(urllib.parse.urlsplit(self.url).path)


# exp-referit/referit-dataset/download_referit_dataset.sh
REFERIT_DATASET = RemoteFile(f"{BERKELEY_REFERIT_BASE}/referitdata.tar.gz", archive=True)
REFERIT_EDGEBOXES = RemoteFile(f"{BERKELEY_REFERIT_BASE}/referit_edgeboxes_top100.zip",
                               archive=True)
# models/convert_caffemodel/params/download_vgg_params.sh
VGG_PARAMS = RemoteFile(f"{BERKELEY_MODELS_BASE}/vgg_params.npz")
# exp-referit/tfmodel/download_trained_models.sh
TRAINED_MODELS = tuple(RemoteFile(f"{BERKELEY_MODELS_BASE}/{name}") for name in (
    "referit_fc8_det_iter_25000.tfmodel",
    "referit_fc8_seg_lowres_iter_30000.tfmodel",
    "referit_fc8_seg_highres_iter_18000.tfmodel",
))
# exp-referit/data/* of the repository at RELEASE_COMMIT: (size in bytes, SHA-256).
_ANNOTATION_CHECKSUMS = {
    "referit_all_imlist.txt":
        (114071, "d1438ef505997affe2b833a0ba6f4d74f431435716bc9187f5ae97af3472d95d"),
    "referit_bbox.json":
        (3069185, "bec099400a491b51ac0a01108589b6e49c7ae73223b9f2ff9ed8918d3f03a25e"),
    "referit_imcrop.json":
        (1358956, "b0a737647ab0a53f28eed99f2dc113255fe3e2cd11990024fc676c121e44c2f8"),
    "referit_imsize.json":
        (494071, "581f019ba6852e7f957e49026b35897c01adc0b37b8b41bf9a489a3f847bb1d1"),
    "referit_query_all.json":
        (3829546, "dad2f9c40d0365e0b645b4754f5b02696d9a2552daccaa8c813d6c12132abf59"),
    "referit_query_test.json":
        (1917386, "8ede8ab6f4853c5402aa7a1cedf8323f6c317d94085f765684db65f51857e464"),
    "referit_query_train.json":
        (1727956, "70c9e6dd170c1cddbb345a765864d4e7da2f6dabff213973367d588ac28e20a6"),
    "referit_query_trainval.json":
        (1912162, "6dd3ce1e90c0885ae70f76e08e3f741bd6565937ccffb5a30efad284fc3949a3"),
    "referit_query_val.json":
        (184205, "efb5ba835d3d820f4ca29a702ba6ad5112ff0d23c14644f323015095e92a245d"),
    "referit_test_imlist.txt":
        (57048, "2217e8b2b723e40151750294defbd0f15ea7786b758fe447e82272279c42c2a1"),
    "referit_train_imlist.txt":
        (51321, "9c733bd2f8ffb5455c6bd6d97a6558985e4b2ec7b76db107321e877fcb848889"),
    "referit_trainval_imlist.txt":
        (57023, "348ccc1329bfc8fda9ba67d3aacc73d102a6fe98f4744e959ba87520bb423c1c"),
    "referit_val_imlist.txt":
        (5702, "52d42c6af07c26bde1ba8ee678e19cb15c2051b6bb950dda0238267d6742d56e"),
    "vocabulary_referit.txt":
        (65896, "937e1422fa991ee49a4c891981ccba6983e53031b809b8a596841e2b9c445c48"),
}
ANNOTATION_FILES = tuple(RemoteFile(f"{GITHUB_DATA_BASE}/{name}", size=size, sha256=digest)
                         for name, (size, digest) in _ANNOTATION_CHECKSUMS.items())


def mirror_hint(remote_name):
    """How to point a script at a mirror, in a few words (for one-line errors)."""
    return (f"use a mirror: --url=<full URL of {remote_name}>, or --base_url=<folder URL> / "
            f"{MIRROR_ENV}=<folder URL> (the file name is appended)")


def resolve_url(default_url, url=None, base_url=None, environ=None):
    """The URL to fetch: `url` if given, else `base_url` (or $TEXT_OBJSEG_MIRROR) joined with
    the default URL's file name, else the default URL."""
    if url:
        return url
    if base_url is None:
        base_url = (os.environ if environ is None else environ).get(MIRROR_ENV) or None
    if base_url:
        name = posixpath.basename(urllib.parse.urlsplit(default_url).path)
        return base_url.rstrip("/") + "/" + name
    return default_url


def _one_line(text):
    return re.sub(r"\s+", " ", str(text)).strip()


def _content_range_total(value):
    """Total size from a Content-Range header ('bytes a-b/N' or 'bytes */N'), or None."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m or m.group(2) == "*":
        return None
    return int(m.group(2))


def _content_range_start(value):
    m = re.match(r"bytes\s+(\d+)-", value or "")
    return int(m.group(1)) if m else None


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def download_file(url, dest, expected_size=None, sha256=None, *, timeout=60.0, retries=3,
                  force=False, progress=True, chunk_size=1 << 20, log=None):
    """Download `url` to `dest`, resuming `<dest>.part`; return `dest`.

    An existing `dest` is kept (after checking it against `expected_size` / `sha256`)
    unless `force`. The transfer is resumed with a Range request when `<dest>.part`
    exists; a server that ignores Range starts over. The result must match the server's
    announced size (Content-Length / Content-Range) and `expected_size` / `sha256` when
    given, otherwise DownloadError; only then is `.part` renamed to `dest` (atomic).
    Transfers that drop midway are resumed up to `retries` times.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    dest = os.fspath(dest)
    name = posixpath.basename(urllib.parse.urlsplit(url).path) or os.path.basename(dest)
    if os.path.exists(dest) and not force:
        _check_complete(dest, url, expected_size, sha256, name, remove_bad=False)
        log(f"already there: {dest}")
        return dest
    part = dest + ".part"
    if force:
        _remove(part)
    attempt = 0
    while True:
        offset = os.path.getsize(part) if os.path.exists(part) else 0
        if expected_size is not None and offset > expected_size:
            _remove(part)
            offset = 0
        try:
            done = _transfer(url, part, offset, expected_size, name, timeout, progress,
                             chunk_size)
        except _Interrupted as e:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"download of {url} stopped at {e.received} bytes ({_one_line(e.reason)}); "
                    f"run again to resume from {part}") from None
            log(f"connection dropped at {e.received} bytes ({_one_line(e.reason)}); "
                f"resuming ({attempt}/{retries})")
            continue
        if done:
            break
    _check_complete(part, url, expected_size, sha256, name, remove_bad=True)
    os.replace(part, dest)
    return dest


class _Interrupted(Exception):
    def __init__(self, received, reason):
        super().__init__(reason)
        self.received = received
        self.reason = reason


def _open(url, offset, timeout, name):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            return e  # Range not satisfiable: the .part may already be complete
        what = "not found (HTTP 404)" if e.code == 404 else f"HTTP {e.code} {_one_line(e.reason)}"
        raise DownloadError(f"cannot download {url}: {what}; {mirror_hint(name)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"cannot reach {url} ({_one_line(reason)}); the host may be down: "
                            f"{mirror_hint(name)}") from None


def _transfer(url, part, offset, expected_size, name, timeout, progress, chunk_size):
    """One request; True when `part` holds the whole file (as far as the server says)."""
    response = _open(url, offset, timeout, name)
    with response:
        status = getattr(response, "status", None) or response.getcode()
        headers = response.headers
        if status == 416:
            total = _content_range_total(headers.get("Content-Range"))
            if total is None:
                total = expected_size
            if total is not None and total == offset:
                return True
            _remove(part)  # stale or oversized partial file: start over
            return False
        if status == 206:
            if _content_range_start(headers.get("Content-Range")) != offset:
                _remove(part)  # not the range asked for: start over
                return False
            total = _content_range_total(headers.get("Content-Range"))
            mode = "ab"
        else:  # a full response (the server ignored Range, or there was no .part)
            offset = 0
            length = headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        content_type = headers.get("Content-Type", "")
        if content_type.startswith("text/html") and not name.endswith((".html", ".htm")):
            raise DownloadError(
                f"{url} returned an HTML page, not {name} (the host may have moved); "
                f"{mirror_hint(name)}")
        if total is not None and expected_size is not None and total != expected_size:
            raise DownloadError(
                f"size check failed for {url}: the server has {total} bytes, expected "
                f"{expected_size} (wrong file or mirror?)")
        received = offset
        os.makedirs(os.path.dirname(os.path.abspath(part)), exist_ok=True)
        with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B",
                                         unit_scale=True, desc=name, disable=not progress,
                                         leave=False) as bar:
            try:
                while True:
                    block = response.read(chunk_size)
                    if not block:
                        break
                    f.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as e:  # TimeoutError is an OSError
                raise _Interrupted(received, e) from None
    if total is not None and received < total:
        raise _Interrupted(received, f"got {received} of {total} bytes")
    if total is not None and received > total:
        _remove(part)
        raise DownloadError(f"size check failed for {url}: received {received} bytes, the "
                            f"server announced {total}")
    return True


def _check_complete(path, url, expected_size, sha256, name, remove_bad):
    """Check a finished download (`remove_bad`: discard it if wrong) or an existing file."""
    advice = ("removed it (wrong file or mirror?)" if remove_bad
              else "delete it or pass --force")
    size = os.path.getsize(path)
    if expected_size is not None and size != expected_size:
        if remove_bad:
            _remove(path)
        raise DownloadError(f"size check failed for {path} from {url}: {size} bytes, expected "
                            f"{expected_size}; {advice}")
    if sha256 is not None and _sha256(path) != sha256.lower():
        if remove_bad:
            _remove(path)
        raise DownloadError(f"checksum (SHA-256) mismatch for {path} from {url}; {advice}")


def unpack_marker(archive, dest_dir):
    """The file that records that `archive` was fully unpacked into `dest_dir`."""
    return os.path.join(dest_dir, f".{os.path.basename(archive)}.unpacked")


def unpack_archive(archive, dest_dir, force=False):
    """Unpack a tar(.gz) or zip archive into `dest_dir`, like `tar -x` / `unzip` (existing
    files are overwritten, others kept); return the top-level names it holds.

    Members go to a hidden temporary folder inside `dest_dir` first and are moved into place
    once all are out, then a marker file records completion (a rerun skips the archive).
    Members that would land outside `dest_dir` (absolute paths, '..', links) are refused.
    """
    archive, dest_dir = os.fspath(archive), os.fspath(dest_dir)
    marker = unpack_marker(archive, dest_dir)
    if os.path.exists(marker) and not force:
        with open(marker, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    if not os.path.isfile(archive):
        raise FileNotFoundError(f"archive not found: {archive}")
    os.makedirs(dest_dir, exist_ok=True)
    tmp = os.path.join(dest_dir, f".{os.path.basename(archive)}.unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _check_member(member, archive)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _check_member(member.name, archive)
                    if member.issym() or member.islnk() or member.isdev():
                        raise ValueError(f"refusing link or device {member.name!r} in {archive}")
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(tmp, filter="data")
                else:  # Python < 3.11.4: members were checked above
                    tf.extractall(tmp)
        else:
            raise ValueError(f"not a tar or zip archive: {archive}")
        top = sorted(os.listdir(tmp))
        for root, _dirs, files in os.walk(tmp):
            rel = os.path.relpath(root, tmp)
            target_root = dest_dir if rel == "." else os.path.join(dest_dir, rel)
            os.makedirs(target_root, exist_ok=True)
            for fname in files:
                os.replace(os.path.join(root, fname), os.path.join(target_root, fname))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(f"cannot unpack {archive}: {_one_line(e)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(marker + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(name + "\n" for name in top)
    os.replace(marker + ".tmp", marker)
    return top


def _check_member(name, archive):
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or re.match(r"^\w:", norm):
        raise ValueError(f"refusing unsafe path {name!r} in {archive}")


def fetch(remote, output_dir, *, url=None, base_url=None, unpack_dir=None, keep_archive=True,
          dry_run=False, force=False, timeout=60.0, retries=3, progress=True, log=None):
    """Fetch one RemoteFile into `output_dir` (and unpack archives into `unpack_dir`,
    default `output_dir`); return the downloaded path. With `dry_run`, only say what
    would be done. A finished unpack (marker present) skips the download too."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    source = resolve_url(remote.url, url=url, base_url=base_url)
    dest = os.path.join(output_dir, remote.name)
    unpack_dir = output_dir if unpack_dir is None else unpack_dir
    size = f" ({remote.size} bytes)" if remote.size is not None else ""
    if dry_run:
        if remote.archive and os.path.exists(unpack_marker(dest, unpack_dir)):
            print(f"already unpacked: {dest} -> {unpack_dir}")
            return dest
        if os.path.exists(dest):
            print(f"already there: {dest}")
        else:
            print(f"would fetch {source} -> {dest}{size}")
        if remote.archive:
            print(f"would unpack {dest} -> {unpack_dir}")
        return dest
    if remote.archive and not force and os.path.exists(unpack_marker(dest, unpack_dir)):
        log(f"already unpacked: {dest} -> {unpack_dir}")
        return dest
    log(f"fetching {source} -> {dest}")
    download_file(source, dest, remote.size, remote.sha256, timeout=timeout, retries=retries,
                  force=force, progress=progress, log=log)
    if remote.archive:
        log(f"unpacking {dest} -> {unpack_dir}")
        unpack_archive(dest, unpack_dir, force=force)
        if not keep_archive:
            _remove(dest)
    return dest


# ---------------------------------------------------------------------------------------
# Shared absl plumbing of the datasets/download_*.py scripts (called from those scripts).


def define_download_flags(default_output_dir, file_names):
    """Define the flags common to the download scripts (call once, from a script)."""
    from absl import flags

    flags.DEFINE_string("output_dir", default_output_dir, "Folder to download into.")
    flags.DEFINE_string("url", None,
                        "Full URL to fetch instead of the default one (one file only: "
                        "with several files, select one with --files).")
    flags.DEFINE_string("base_url", None,
                        f"Mirror folder URL replacing the default one (file names are "
                        f"appended); defaults to ${MIRROR_ENV} when set.")
    flags.DEFINE_list("files", list(file_names), "Which files to fetch (default: all).")
    flags.DEFINE_boolean("dry_run", False, "Only print what would be fetched and unpacked.")
    flags.DEFINE_boolean("force", False, "Download (and unpack) again even if present.")
    flags.DEFINE_float("timeout", 60.0, "Network timeout in seconds.")
    flags.DEFINE_integer("retries", 3, "How often to resume a dropped transfer.")


def select_files(remotes, names, url=None):
    """The RemoteFiles named in `names` (ValueError for unknown ones, or for `url` with
    more than one file)."""
    by_name = {r.name: r for r in remotes}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown file(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(by_name)}")
    if not names:
        raise ValueError("no file selected (--files is empty)")
    chosen = [by_name[n] for n in dict.fromkeys(names)]
    if url and len(chosen) != 1:
        raise ValueError(f"--url names one file but {len(chosen)} are selected; add "
                         f"--files=<one of {', '.join(r.name for r in chosen)}> or use "
                         f"--base_url / {MIRROR_ENV}")
    return chosen


def run_download_script(remotes, flag_values, output_dirs=None, keep_archive=True):
    """Body of a download script: fetch the selected files (into `output_dirs[name]`, default
    --output_dir; archives are unpacked where they land); return an exit status, printing a
    single line on error."""
    output_dirs = output_dirs or {}
    try:
        chosen = select_files(remotes, flag_values.files, flag_values.url)
        for remote in chosen:
            fetch(remote, output_dirs.get(remote.name, flag_values.output_dir),
                  url=flag_values.url, base_url=flag_values.base_url,
                  keep_archive=keep_archive, dry_run=flag_values.dry_run,
                  force=flag_values.force, timeout=flag_values.timeout,
                  retries=flag_values.retries)
    except (DownloadError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
