"""Published weights on first use (robustjax.hub): download from a loopback mirror, verification, failure
messages, offline mode, the local copy, and two processes fetching one file at once."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT, WEIGHTS, need
from weights_server import WeightsServer, closed_port_url

from robustjax import hub

R20 = "cifar10-resnet/resnet20-12fca82f.th"
R20_SHA = "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh download cache, no local weights folder, network allowed (to the loopback mirror only)."""
    monkeypatch.delenv("ROBUSTJAX_WEIGHTS", raising=False)
    monkeypatch.delenv("ROBUSTJAX_OFFLINE", raising=False)
    monkeypatch.setenv("ROBUSTJAX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


@pytest.fixture
def server(cache, weights_dir, monkeypatch):
    with WeightsServer(weights_dir) as s:
        monkeypatch.setenv("ROBUSTJAX_WEIGHTS_MIRROR", s.url)
        yield s


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*.partial"))


def test_download_verifies_records_and_is_reused(server, cache):
    got = hub.path("cifar_resnet20")
    assert got == cache / R20 and hashlib.sha256(got.read_bytes()).hexdigest() == R20_SHA
    record = json.loads((cache / (R20 + ".json")).read_text())
    assert record == {"url": f"{server.url}/{R20}", "sha256": R20_SHA, "size": 1099231, "pinned": True}
    assert hub.path("cifar_resnet20") == got and server.hits[R20] == 1  # second use: no request


def test_unpinned_pair_lands_together_and_records_what_arrived(server, cache):
    enc = hub.path("comdefend:cifar")
    assert enc == cache / "comdefend" / "enc20_0.0001.npy" and (enc.parent / "dec20_0.0001.npy").is_file()
    for name in ("enc20_0.0001.npy", "dec20_0.0001.npy"):
        record = json.loads((enc.parent / f"{name}.json").read_text())
        want = hashlib.sha256((WEIGHTS / "comdefend" / name).read_bytes()).hexdigest()
        assert record["sha256"] == want and record["pinned"] is False


def test_wrong_hash_names_url_and_both_hashes(server, cache):
    body = bytearray((WEIGHTS / R20).read_bytes())
    body[1000] ^= 0xFF
    server.replace[R20] = (bytes(body), "application/octet-stream")
    with pytest.raises(hub.IntegrityError) as err:
        hub.path("cifar_resnet20")
    bad = hashlib.sha256(body).hexdigest()
    assert f"{server.url}/{R20}" in str(err.value) and bad in str(err.value) and R20_SHA in str(err.value)
    assert server.hits[R20] == 2  # one retry
    assert not (cache / R20).exists() and not _leftovers(cache)


def test_truncated_file_is_refused(server, cache):
    server.replace[R20] = ((WEIGHTS / R20).read_bytes()[:500_000], "application/octet-stream")
    want = rf"tried twice\): {server.url}/{R20}: received 500000 bytes, expected 1099231"
    with pytest.raises(hub.DownloadError, match=want):
        hub.path("cifar_resnet20")
    assert not (cache / R20).exists() and not _leftovers(cache)


def test_connection_cut_short_is_retried_then_refused(server, cache):
    server.cut_short.add(R20)
    with pytest.raises(hub.DownloadError, match=rf"{server.url}/{R20}"):
        hub.path("cifar_resnet20")
    assert server.hits[R20] == 2 and not (cache / R20).exists() and not _leftovers(cache)


def test_html_page_is_refused_naming_url_and_hashes(server, cache):
    page = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
    server.replace[R20] = (page, "text/html; charset=utf-8")
    with pytest.raises(hub.IntegrityError, match="HTML page") as err:
        hub.path("cifar_resnet20")
    msg = str(err.value)
    assert f"{server.url}/{R20}" in msg and hashlib.sha256(page).hexdigest() in msg and R20_SHA in msg
    assert not (cache / R20).exists()


def test_server_down_names_the_url(cache, monkeypatch):
    url = closed_port_url()
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS_MIRROR", url)
    with pytest.raises(hub.DownloadError, match=rf"could not download resnet20-12fca82f.th .*{url}/{R20}"):
        hub.path("cifar_resnet20")


def test_offline_touches_nothing_and_says_where_to_put_the_file(server, cache, monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_OFFLINE", "1")
    with pytest.raises(hub.MissingWeightsError) as err:
        hub.path("cifar_resnet20")
    msg = str(err.value)
    assert "ROBUSTJAX_OFFLINE" in msg and str(cache / R20) in msg and "checkpoints_convert fetch cifar_resnet20" in msg
    assert sum(server.hits.values()) == 0


def test_browser_only_source_says_so(cache, monkeypatch):
    monkeypatch.delenv("ROBUSTJAX_WEIGHTS_MIRROR", raising=False)
    with pytest.raises(hub.MissingWeightsError) as err:
        hub.path("elic:0016")
    msg = str(err.value)
    assert "browser session" in msg and "drive.google.com/file/d/1MWlYAmpHbWlGtG7MBBTPEew800grY5yC" in msg
    assert str(cache / "elic" / "ELIC_0016_ft_3980_Plateau.pth.tar") in msg


def test_unpinned_download_changed_afterwards_is_refused(server, cache):
    """A mirror can serve a browser-only file; with no pinned hash, the one it arrived with is the check."""
    name = "elic/ELIC_0016_ft_3980_Plateau.pth.tar"
    server.replace[name] = (b"stand-in bytes", "application/octet-stream")
    got = hub.path("elic:0016")
    arrived = hashlib.sha256(b"stand-in bytes").hexdigest()
    got.write_bytes(b"changed bytes")
    with pytest.raises(hub.IntegrityError, match=rf"{hashlib.sha256(b'changed bytes').hexdigest()}.*{arrived}"):
        hub.path("elic:0016")


def test_local_copy_is_used_and_verified(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS", str(weights_dir))
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS_MIRROR", closed_port_url())  # must not be needed
    monkeypatch.delenv("ROBUSTJAX_OFFLINE", raising=False)
    assert hub.path("cifar_resnet20") == weights_dir / R20
    tampered = tmp_path / "weights"
    (tampered / "cifar10-resnet").mkdir(parents=True)
    body = bytearray((weights_dir / R20).read_bytes())
    body[-1] ^= 1
    (tampered / R20).write_bytes(bytes(body))
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS", str(tampered))
    with pytest.raises(hub.IntegrityError, match=rf"{hashlib.sha256(body).hexdigest()}.*{R20_SHA}"):
        hub.path("cifar_resnet20")


_FETCH = """
import pathlib, sys, time
print("ready", flush=True)
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.01)
from robustjax import hub
print(hub.path("cifar_resnet20"), flush=True)
"""


def test_two_processes_fetching_one_file_end_with_one_good_copy(server, cache, tmp_path):
    server.seconds_per_file = 2.0  # the second process arrives while the first is downloading
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _FETCH, str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert {out.strip() for out, _ in outs} == {str(cache / R20)}
    assert hashlib.sha256((cache / R20).read_bytes()).hexdigest() == R20_SHA
    assert server.hits[R20] == 1 and not _leftovers(cache)


def test_catalogue_pins_only_verified_digests_and_readme_shows_it():
    for entry in hub.ENTRIES.values():
        for f in entry.files:
            assert f.urls or f.browser, f"{entry.name}: {f.name} has no source"
            if f.sha256 is not None:  # pinned: the publisher's hash in the name, checked on a local copy
                assert f.sha256.startswith(f.name.rsplit("-", 1)[1].split(".")[0])
                local = need(WEIGHTS / entry.folder / f.name)
                assert hashlib.sha256(local.read_bytes()).hexdigest() == f.sha256
                assert local.stat().st_size == f.size
    readme = (ROOT / "README.md").read_text()
    assert hub.markdown_table() in readme, "README's weights table differs from hub.markdown_table()"
    with pytest.raises(ValueError, match="no published weights named 'resnet51'"):
        hub.get("resnet51")


def test_fetch_command_downloads_and_converts(server, cache, capsys):
    from checkpoints_convert.__main__ import main

    t0 = time.perf_counter()
    assert main(["fetch", "cifar_resnet20"]) == 0
    assert f"cifar_resnet20: {cache / R20} (verified and converted)" in capsys.readouterr().out
    converted = list((cache.parent / "cifar_resnet").iterdir())
    assert len(converted) == 1 and converted[0].name.startswith(R20_SHA[:16])
    assert main(["fetch", "--list"]) == 0 and hub.markdown_table() in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["fetch", "cifar_resnet21"])
    assert time.perf_counter() - t0 < 60
