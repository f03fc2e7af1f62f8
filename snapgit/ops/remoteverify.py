"""``verify --remote``: check a remote as ``verify`` checks the store, and change nothing.

Always: the format key, every ref parses, every index downloads whole (checksum, the pack it
names) and has its pack, and every ref names an object some index holds. Packs without an index
(a killed push) are garbage, reported but harmless. With ``read_data``, every pack is downloaded
and checked against its name, and the whole remote is then verified as a store is (every object
reachable from every ref is read, re-hashed and decoded): the packs and refs go into a temporary
store under ``.snapstore/tmp/``, which is removed afterwards.
"""

from __future__ import annotations

import os
import shutil

from snapgit.errors import SnapError
from snapgit.ops.remotes import RemoteIndex, connect, default_remote
from snapgit.ops.verify import Problem, VerifyReport, verify_store
from snapgit.remote.base import RemoteCorrupt, RemoteMissing
from snapgit.remote.layout import RemoteRef, RemoteRepo, is_ref_key
from snapgit.store.config import Config
from snapgit.store.layout import Store
from snapgit.store.privatefile import write_private

__all__ = ["verify_remote"]


def _refs(repo: RemoteRepo, report: VerifyReport) -> dict[str, RemoteRef]:
    out = {}
    for key in sorted(repo.remote.list("refs/")):
        if not is_ref_key(key):
            report.garbage.append(key)  # not a branch or tag name: nothing reads it
            continue
        try:
            ref = repo.read_ref(key)
        except RemoteCorrupt as exc:
            report.problems.append(Problem("ref", key, exc.message))
            continue
        if ref is not None:
            out[key] = ref
    return out


def verify_remote(store: Store, remote: str | None, *, read_data: bool = False) -> VerifyReport:
    name = default_remote(store, remote)
    repo = RemoteRepo(connect(store, name))
    report = VerifyReport()
    try:
        if not repo.exists():
            return report
    except RemoteCorrupt as exc:
        report.problems.append(Problem("remote", repo.url, exc.message))
        return report
    refs = _refs(repo, report)
    packs, visible = repo.pack_files()
    garbage = packs - visible
    report.garbage += [repo.pack_key(g) for g in sorted(garbage)]
    work = store.root / "tmp" / f"remote-verify-{os.urandom(6).hex()}"
    work.mkdir(mode=0o700, parents=True)
    try:
        temp = Store.init(work, Config())
        pack_dir = temp.objects.pack_dir
        good = []
        for pack in sorted(visible):
            report.packs += 1
            try:
                index = repo.download_index(pack)
            except RemoteCorrupt as exc:
                report.problems.append(Problem("index", repo.index_key(pack), exc.message))
                continue
            if pack not in packs:
                report.problems.append(Problem("pack", repo.pack_key(pack), "missing (its index is present)"))
                continue
            if read_data:
                try:
                    data = repo.download_pack(pack)
                except (RemoteCorrupt, RemoteMissing) as exc:
                    report.problems.append(Problem("pack", repo.pack_key(pack), exc.message))
                    continue
                report.bytes_read += len(data)
                write_private(pack_dir / f"pack-{pack}.pack", data)
            write_private(pack_dir / f"pack-{pack}.idx", index)
            good.append(pack)
        if read_data:
            temp.objects.refresh()
            for ref in refs.values():
                temp.refs.set_if_equals(ref.name, None, ref.id, who="verify", message="verify --remote")
            local = verify_store(temp, read_data=True)
            temp.close()
            report.problems += [p for p in local.problems if p.what != "reflog"]
            report.objects_indexed = local.objects_indexed
            report.commits, report.nodes = local.commits, local.nodes
            report.records_checked, report.objects_read = local.records_checked, local.objects_read
        else:
            known = RemoteIndex([pack_dir / f"pack-{p}.idx" for p in good])
            try:
                for ref in refs.values():
                    if not known.has(bytes.fromhex(ref.id)):
                        report.problems.append(Problem("ref", ref.name, f"names {ref.id[:12]}, which no index holds"))
                report.objects_indexed = known.count
            finally:
                known.close()
            temp.close()
    except SnapError:
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report
