"""Windows path forms (pipeline/windows/rdcw_paths.py): long paths, 8.3 names, shares."""

from __future__ import annotations

from pipeline.windows.rdcw_paths import (
    DRIVE_REMOTE,
    NETWORK_BUFFER_LIMIT,
    LongNames,
    buffer_size_for,
    from_extended,
    has_short_component,
    is_network_path,
    join_name,
    to_extended,
)


def test_extended_prefix_for_local_and_unc_paths_and_back() -> None:
    assert to_extended("C:\\data\\in") == "\\\\?\\C:\\data\\in"
    assert to_extended("C:/data/in") == "\\\\?\\C:\\data\\in"  # the prefix forbids `/`
    assert to_extended("\\\\nas\\share\\in") == "\\\\?\\UNC\\nas\\share\\in"
    assert to_extended("\\\\?\\C:\\x") == "\\\\?\\C:\\x"  # already extended
    assert to_extended("\\\\.\\pipe\\x") == "\\\\.\\pipe\\x"  # a device path stays
    for plain in ("C:\\data\\in", "\\\\nas\\share\\in"):
        assert from_extended(to_extended(plain)) == plain
    deep = "C:\\" + "\\".join(["d" * 50] * 8)  # 400+ characters: past MAX_PATH
    assert from_extended(to_extended(deep)) == deep


def test_network_paths_are_unc_paths_or_remote_drives() -> None:
    drives = {"Z:\\": DRIVE_REMOTE, "C:\\": 3}
    asked: list[str] = []

    def drive_type(root: str) -> int:
        asked.append(root)
        return drives.get(root, 0)

    assert is_network_path("\\\\nas\\share\\in", drive_type)
    assert is_network_path("\\\\?\\UNC\\nas\\share", drive_type)
    assert is_network_path("Z:\\mapped\\in", drive_type)
    assert not is_network_path("C:\\local", drive_type)
    assert not is_network_path("\\\\?\\C:\\local", drive_type)
    assert not is_network_path("\\\\.\\pipe\\x", drive_type)
    assert not is_network_path("Z:\\mapped")  # no way to ask: taken as local
    assert asked == ["Z:\\", "C:\\", "C:\\"]


def test_buffer_sizes_are_aligned_and_capped_on_shares() -> None:
    assert buffer_size_for(65536, network=False) == 65536
    assert buffer_size_for(1000, network=False) == 1000
    assert buffer_size_for(1001, network=False) == 1008  # rounded up to 8
    assert buffer_size_for(64, network=True) == 64
    assert buffer_size_for(1024 * 1024, network=False) == 1024 * 1024
    assert buffer_size_for(1024 * 1024, network=True) == NETWORK_BUFFER_LIMIT == 65536


def test_record_names_join_their_root() -> None:
    assert join_name("C:\\in", "a.csv") == "C:\\in\\a.csv"
    assert join_name("C:\\in", "sub\\deeper\\a.csv") == "C:\\in\\sub\\deeper\\a.csv"
    assert join_name("C:\\", "a.csv") == "C:\\a.csv"  # a drive root ends with `\`
    assert join_name("\\\\nas\\share", "x") == "\\\\nas\\share\\x"
    assert join_name("/tmp/in", "sub\\a", "/") == "/tmp/in/sub/a"


def test_short_names_are_spotted_in_any_component() -> None:
    for path in ("C:\\PROGRA~1\\x", "C:\\in\\REPORT~1.CSV", "C:\\Users\\RUNNER~1\\AppData",
                 "C:\\in\\A~12345.TXT", "C:\\in\\~1"):  # fmt: skip
        assert has_short_component(path), path
    for path in ("C:\\in\\report.csv", "C:\\in\\a~b.csv", "C:\\in\\long~name~1.text",
                 "C:\\in\\~$lock.docx", "C:\\in\\backup~"):  # fmt: skip
        assert not has_short_component(path), path


class FakeResolver:
    """GetLongPathNameW over a fixed set of existing paths (short -> long, case-blind)."""

    def __init__(self, existing: dict[str, str]) -> None:
        self.existing = {k.lower(): v for k, v in existing.items()}
        self.calls: list[str] = []

    def __call__(self, path: str) -> str | None:
        self.calls.append(path)
        return self.existing.get(from_extended(path).lower())


def test_existing_short_paths_expand_through_the_resolver() -> None:
    resolver = FakeResolver({"C:\\IN\\REPORT~1.CSV": "\\\\?\\C:\\in\\Report for 2024.csv"})
    names = LongNames(resolver)
    assert names.expand("C:\\in\\REPORT~1.CSV") == "C:\\in\\Report for 2024.csv"
    assert resolver.calls == ["\\\\?\\C:\\in\\REPORT~1.CSV"]  # long-path form for the call
    assert names.expand("C:\\in\\plain.csv") == "C:\\in\\plain.csv"
    assert len(resolver.calls) == 1  # no call for a path with no short part


def test_a_deleted_file_known_by_its_short_name_is_expanded_from_memory() -> None:
    resolver = FakeResolver({"C:\\in\\REPORT~1.CSV": "C:\\in\\Report for 2024.csv"})
    names = LongNames(resolver)
    names.expand("C:\\in\\REPORT~1.CSV")  # seen while it existed
    resolver.existing.clear()  # then deleted
    assert names.expand("c:\\in\\report~1.csv") == "C:\\in\\Report for 2024.csv"


def test_a_gone_file_in_a_short_named_folder_keeps_its_own_name() -> None:
    resolver = FakeResolver({"C:\\Users\\RUNNER~1": "C:\\Users\\runneradmin"})
    names = LongNames(resolver)
    path = "C:\\Users\\RUNNER~1\\Temp\\gone.txt"
    assert names.expand(path) == "C:\\Users\\runneradmin\\Temp\\gone.txt"
    # Nothing resolves at all: the path is kept as it came.
    assert LongNames(FakeResolver({})).expand("C:\\X\\ABCDEF~1.TXT") == "C:\\X\\ABCDEF~1.TXT"


def test_folders_learned_from_one_path_expand_another_one_that_is_gone() -> None:
    resolver = FakeResolver({"C:\\DATA~1\\SUB~1\\a.txt": "C:\\Data Files\\Sub Folder\\a.txt"})
    names = LongNames(resolver)
    names.expand("C:\\DATA~1\\SUB~1\\a.txt")
    assert names.expand("C:\\DATA~1\\SUB~1\\gone.txt") == "C:\\Data Files\\Sub Folder\\gone.txt"
