"""Downloads without the network: a local HTTP server (127.0.0.1, in-test thread) serves
small files, with or without Range support, dropping connections or lying about sizes."""

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile

import pytest

from text_objseg_tf2 import download
from text_objseg_tf2.download import (
    MIRROR_ENV,
    DownloadError,
    RemoteFile,
    download_file,
    fetch,
    resolve_url,
    select_files,
    unpack_archive,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


def make_tar_gz(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    """/<name>: files[name]. Behaviour by name prefix: norange- ignores Range, drop- sends
    half the body then closes (first request only), nolength- sends no Content-Length,
    html- is served as text/html (a host's "page moved" answer)."""

    protocol_version = "HTTP/1.1"
    timeout = 5
    files = {}
    requests = []
    dropped = set()

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        self.requests.append((name, self.headers.get("Range")))
        data = self.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and not name.startswith("norange-"):
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if name.startswith("nolength-"):
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        if name.startswith("html-"):
            self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        if name.startswith("drop-") and name not in self.dropped:
            self.dropped.add(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    Handler.files = {
        "data.bin": PAYLOAD,
        "norange-data.bin": PAYLOAD,
        "drop-data.bin": PAYLOAD,
        "nolength-data.bin": PAYLOAD,
        "vgg_params.npz": PAYLOAD,
        "html-vgg_params.npz": b"<html>Page moved</html>",
        "pack.tar.gz": make_tar_gz({"images/1.jpg": b"jpg", "mask/1_1.mat": b"mat"}),
        "pack.zip": make_zip({"referit_edgeboxes_top100/1.txt": b"0 0 1 1\n"}),
    }
    Handler.requests = []
    Handler.dropped = set()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A URL on a localhost port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/referitdata.tar.gz"


def quiet(msg):
    pass


# ---------------------------------------------------------------------------------------
# URL and mirror resolution, catalogue


def test_resolve_url():
    default = "http://www.eecs.berkeley.edu/~ronghang/projects/text_objseg/models/vgg_params.npz"
    assert resolve_url(default, environ={}) == default
    assert resolve_url(default, url="http://m/x.npz", environ={}) == "http://m/x.npz"
    assert resolve_url(default, base_url="https://m.org/a/", environ={}) == \
        "https://m.org/a/vgg_params.npz"
    env = {MIRROR_ENV: "file:///srv/mirror"}
    assert resolve_url(default, environ=env) == "file:///srv/mirror/vgg_params.npz"
    assert resolve_url(default, base_url="http://b", environ=env) == "http://b/vgg_params.npz"
    assert resolve_url(default, url="http://u/v", base_url="http://b", environ=env) == "http://u/v"


def test_default_urls_are_the_releases():
    # the URLs of the original download_*.sh scripts
    berkeley = "http://www.eecs.berkeley.edu/~ronghang/projects/"
    assert download.REFERIT_DATASET.url == \
        berkeley + "cvpr16_text_obj_retrieval/referitdata.tar.gz"
    assert download.REFERIT_EDGEBOXES.url == \
        berkeley + "cvpr16_text_obj_retrieval/referit_edgeboxes_top100.zip"
    assert download.VGG_PARAMS.url == berkeley + "text_objseg/models/vgg_params.npz"
    assert [r.url for r in download.TRAINED_MODELS] == [
        berkeley + "text_objseg/models/referit_fc8_" + n + ".tfmodel"
        for n in ("det_iter_25000", "seg_lowres_iter_30000", "seg_highres_iter_18000")]
    assert download.REFERIT_DATASET.archive and download.REFERIT_EDGEBOXES.archive
    names = {r.name for r in download.ANNOTATION_FILES}
    assert "vocabulary_referit.txt" in names and len(names) == 14
    assert all(r.url.startswith("https://raw.githubusercontent.com/ronghanghu/text_objseg/")
               for r in download.ANNOTATION_FILES)


def test_annotation_checksums_match_release_files(referit_data_dir):
    for remote in download.ANNOTATION_FILES:
        path = referit_data_dir / remote.name
        assert path.stat().st_size == remote.size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == remote.sha256


def test_select_files():
    remotes = download.TRAINED_MODELS
    names = [r.name for r in remotes]
    assert select_files(remotes, names) == list(remotes)
    assert select_files(remotes, names[1:2], url="http://x/y") == [remotes[1]]
    with pytest.raises(ValueError, match="unknown file"):
        select_files(remotes, ["nope.tfmodel"])
    with pytest.raises(ValueError, match="--url names one file but 3"):
        select_files(remotes, names, url="http://x/y")


# ---------------------------------------------------------------------------------------
# download_file: fetch, resume, size checks, atomic rename, one-line errors


def test_download_whole_file(server, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    assert download_file(f"{server}/data.bin", dest, progress=False, log=quiet) == str(dest)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert Handler.requests == [("data.bin", None)]


def test_resume_from_part_file(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    download_file(f"{server}/data.bin", dest, expected_size=len(PAYLOAD), progress=False,
                  log=quiet)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.requests == [("data.bin", "bytes=1000-")]


def test_server_ignoring_range_starts_over(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(b"x" * 1000)
    download_file(f"{server}/norange-data.bin", dest, progress=False, log=quiet)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_finalised(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download_file(f"{server}/data.bin", dest, progress=False, log=quiet)  # server says 416
    assert dest.read_bytes() == PAYLOAD
    assert Handler.requests == [("data.bin", f"bytes={len(PAYLOAD)}-")]


def test_dropped_connection_resumes(server, tmp_path):
    dest = tmp_path / "data.bin"
    download_file(f"{server}/drop-data.bin", dest, retries=2, progress=False, log=quiet)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.requests == [("drop-data.bin", None),
                                ("drop-data.bin", f"bytes={len(PAYLOAD) // 2}-")]


def test_dropped_connection_without_retries_keeps_part(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="run again to resume") as err:
        download_file(f"{server}/drop-data.bin", dest, retries=0, progress=False, log=quiet)
    assert "\n" not in str(err.value)
    assert not dest.exists()
    assert (tmp_path / "data.bin.part").read_bytes() == PAYLOAD[: len(PAYLOAD) // 2]
    download_file(f"{server}/drop-data.bin", dest, retries=0, progress=False, log=quiet)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()


def test_size_check_against_server_and_known_size(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=r"size check failed .*server has 10240 bytes, "
                                            r"expected 999"):
        download_file(f"{server}/data.bin", dest, expected_size=999, progress=False, log=quiet)
    assert not dest.exists()
    # no Content-Length: the check happens on the finished file, which is then discarded
    with pytest.raises(DownloadError, match="size check failed .*10240 bytes, expected 999; "
                                            "removed it"):
        download_file(f"{server}/nolength-data.bin", dest, expected_size=999, progress=False,
                      log=quiet)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()
    download_file(f"{server}/nolength-data.bin", dest, expected_size=len(PAYLOAD),
                  progress=False, log=quiet)
    assert dest.read_bytes() == PAYLOAD


def test_checksum(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="SHA-256"):
        download_file(f"{server}/data.bin", dest, sha256="0" * 64, progress=False, log=quiet)
    assert not dest.exists()
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    download_file(f"{server}/data.bin", dest, sha256=digest, progress=False, log=quiet)
    assert dest.read_bytes() == PAYLOAD


def test_existing_file_is_kept_checked_or_forced(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"old")
    download_file(f"{server}/data.bin", dest, progress=False, log=quiet)
    assert dest.read_bytes() == b"old" and Handler.requests == []
    with pytest.raises(DownloadError, match="3 bytes, expected 10240; delete it or pass --force"):
        download_file(f"{server}/data.bin", dest, expected_size=len(PAYLOAD), progress=False,
                      log=quiet)
    download_file(f"{server}/data.bin", dest, force=True, progress=False, log=quiet)
    assert dest.read_bytes() == PAYLOAD


def test_atomic_rename(server, tmp_path, monkeypatch):
    dest = tmp_path / "data.bin"
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        assert os.path.getsize(src) == len(PAYLOAD) and not os.path.exists(dst)
        calls.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(download.os, "replace", spy)
    download_file(f"{server}/data.bin", dest, progress=False, log=quiet)
    assert calls == [(str(dest) + ".part", str(dest))]


def test_dead_host_is_one_line(dead_url, tmp_path):
    with pytest.raises(DownloadError) as err:
        download_file(dead_url, tmp_path / "new" / "x.tar.gz", timeout=5, progress=False,
                      log=quiet)
    msg = str(err.value)
    assert "\n" not in msg
    assert dead_url in msg and "host may be down" in msg
    assert "--url=" in msg and MIRROR_ENV in msg and "referitdata.tar.gz" in msg
    assert not os.listdir(tmp_path)


def test_404_is_one_line(server, tmp_path):
    url = f"{server}/missing/vgg_params.npz"
    with pytest.raises(DownloadError) as err:
        download_file(url, tmp_path / "vgg_params.npz", progress=False, log=quiet)
    msg = str(err.value)
    assert "\n" not in msg
    assert url in msg and "404" in msg and MIRROR_ENV in msg and "--url=" in msg


def test_html_page_instead_of_file(server, tmp_path):
    with pytest.raises(DownloadError, match="returned an HTML page, not html-vgg_params.npz"):
        download_file(f"{server}/html-vgg_params.npz", tmp_path / "vgg_params.npz",
                      progress=False, log=quiet)
    assert not (tmp_path / "vgg_params.npz").exists()


# ---------------------------------------------------------------------------------------
# unpacking


def test_unpack_tar_gz_and_zip(tmp_path):
    tgz = tmp_path / "referitdata.tar.gz"
    tgz.write_bytes(make_tar_gz({"images/7.jpg": b"a", "mask/7_1.mat": b"b"}))
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "keep.jpg").write_bytes(b"mine")
    assert unpack_archive(tgz, out) == ["images", "mask"]
    assert (out / "images" / "7.jpg").read_bytes() == b"a"
    assert (out / "mask" / "7_1.mat").read_bytes() == b"b"
    assert (out / "images" / "keep.jpg").read_bytes() == b"mine"  # merged, like tar -x
    assert sorted(p for p in os.listdir(out) if p.startswith(".")) == [
        ".referitdata.tar.gz.unpacked"]  # no temporary folder left

    zp = tmp_path / "props.zip"
    zp.write_bytes(make_zip({"referit_edgeboxes_top100/7.txt": b"1 2 3 4\n"}))
    assert unpack_archive(zp, out) == ["referit_edgeboxes_top100"]
    assert (out / "referit_edgeboxes_top100" / "7.txt").read_bytes() == b"1 2 3 4\n"

    # done once: a rerun skips (even if the archive changed), force redoes
    zp.write_bytes(make_zip({"referit_edgeboxes_top100/7.txt": b"changed"}))
    unpack_archive(zp, out)
    assert (out / "referit_edgeboxes_top100" / "7.txt").read_bytes() == b"1 2 3 4\n"
    unpack_archive(zp, out, force=True)
    assert (out / "referit_edgeboxes_top100" / "7.txt").read_bytes() == b"changed"


def test_unpack_refuses_bad_archives(tmp_path):
    evil = tmp_path / "evil.zip"
    evil.write_bytes(make_zip({"../evil.txt": b"x"}))
    with pytest.raises(ValueError, match="unsafe path"):
        unpack_archive(evil, tmp_path / "out")
    evil_tar = tmp_path / "evil.tar.gz"
    evil_tar.write_bytes(make_tar_gz({"/abs.txt": b"x"}))
    with pytest.raises(ValueError, match="unsafe path"):
        unpack_archive(evil_tar, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a tar or zip archive"):
        unpack_archive(junk, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="archive not found"):
        unpack_archive(tmp_path / "absent.zip", tmp_path / "out")


# ---------------------------------------------------------------------------------------
# fetch() and the scripts


def test_fetch_archive_with_mirror(server, tmp_path, monkeypatch, capsys):
    remote = RemoteFile("http://dead.invalid/files/pack.tar.gz", archive=True)
    monkeypatch.setenv(MIRROR_ENV, server)
    out = tmp_path / "ds"
    fetch(remote, str(out), dry_run=True, log=quiet)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"would fetch {server}/pack.tar.gz -> {out / 'pack.tar.gz'}",
                       f"would unpack {out / 'pack.tar.gz'} -> {out}"]
    assert not out.exists() and Handler.requests == []
    fetch(remote, str(out), keep_archive=False, progress=False, log=quiet)
    assert (out / "images" / "1.jpg").read_bytes() == b"jpg"
    assert not (out / "pack.tar.gz").exists()
    fetch(remote, str(out), progress=False, log=quiet)  # unpacked already: no request
    assert len(Handler.requests) == 1
    fetch(remote, str(out), dry_run=True, log=quiet)
    assert capsys.readouterr().out == f"already unpacked: {out / 'pack.tar.gz'} -> {out}\n"


def run_script(name, *args, env=None, cwd=None):
    environ = dict(os.environ, PYTHONPATH=REPO_ROOT)
    environ.pop(MIRROR_ENV, None)
    environ.update(env or {})
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "datasets", name), *args],
                          env=environ, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_scripts_dry_run(tmp_path):
    run = run_script("download_referit_dataset.py", "--dry_run", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "would fetch " + download.REFERIT_DATASET.url +
        " -> ./exp-referit/referit-dataset/referitdata.tar.gz",
        "would unpack ./exp-referit/referit-dataset/referitdata.tar.gz -> "
        "./exp-referit/referit-dataset/",
        "would fetch " + download.REFERIT_EDGEBOXES.url +
        " -> ./exp-referit/data/referit_edgeboxes_top100.zip",
        "would unpack ./exp-referit/data/referit_edgeboxes_top100.zip -> ./exp-referit/data/",
    ]
    run = run_script("download_trained_models.py", "--dry_run", "--base_url=http://m/",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[2] == (
        "would fetch http://m/referit_fc8_seg_highres_iter_18000.tfmodel -> "
        "./exp-referit/tfmodel/referit_fc8_seg_highres_iter_18000.tfmodel")
    run = run_script("download_referit_annotations.py", "--dry_run",
                     "--files=vocabulary_referit.txt", cwd=tmp_path,
                     env={MIRROR_ENV: "http://mirror/data"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "would fetch http://mirror/data/vocabulary_referit.txt -> "
        "./exp-referit/data/vocabulary_referit.txt (65896 bytes)"]
    run = run_script("download_vgg_params.py", "--dry_run", cwd=tmp_path)
    assert run.stdout.splitlines() == [
        "would fetch " + download.VGG_PARAMS.url +
        " -> ./models/convert_caffemodel/params/vgg_params.npz"]
    assert os.listdir(tmp_path) == []


def test_scripts_argument_errors_are_one_line(tmp_path):
    run = run_script("download_trained_models.py", "--url=http://x/m.tfmodel", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "error: --url names one file but 3 are selected; add --files=<one of "
        "referit_fc8_det_iter_25000.tfmodel, referit_fc8_seg_lowres_iter_30000.tfmodel, "
        "referit_fc8_seg_highres_iter_18000.tfmodel> or use --base_url / TEXT_OBJSEG_MIRROR"]
    run = run_script("download_referit_annotations.py", "--files=nope.json", cwd=tmp_path)
    assert run.returncode == 1 and run.stderr.startswith("error: unknown file(s) nope.json")


def test_script_downloads_and_reports_dead_host(server, dead_url, tmp_path):
    out = tmp_path / "params"
    run = run_script("download_vgg_params.py", f"--url={server}/vgg_params.npz",
                     f"--output_dir={out}")
    assert run.returncode == 0, run.stderr
    assert (out / "vgg_params.npz").read_bytes() == PAYLOAD
    run = run_script("download_vgg_params.py", f"--output_dir={tmp_path / 'dead'}",
                     env={MIRROR_ENV: dead_url.rsplit("/", 1)[0]})
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "vgg_params.npz" in errors[0] and MIRROR_ENV in errors[0]
    assert "Traceback" not in run.stderr
