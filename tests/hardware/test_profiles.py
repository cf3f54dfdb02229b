"""Bundled hardware profiles: every file loads, carries the reference figures, and matches real names."""

from __future__ import annotations

from pathlib import Path

import pytest

from atomabench.errors import UserError
from atomabench.hardware import get_profile, load_profiles, match_profile
from atomabench.hardware.profiles import clear_profile_cache

# (memory GB, bandwidth GB/s, bf16 dense TFLOPS, fp8 dense TFLOPS, TDP W, price USD, rent USD/h),
# copied by hand from shared/reference/hardware.md; None where the reference gives no figure.
REFERENCE = {
    "h200-sxm": (141, 4800, 989, 1979, 700, 32000, (3.59, 4.59)),
    "h100-sxm": (80, 3350, 989, 1979, 700, 30000, (2.69, 4.29)),
    "h100-pcie": (80, 2000, 756, 1513, 350, None, (1.99, 3.29)),
    "a100-80gb-sxm": (80, 2039, 312, None, 400, 15000, (1.39, 1.71)),
    "a100-40gb": (40, 1555, 312, None, 400, None, (1.99, 1.99)),
    "l40s": (48, 864, 362, 733, 350, 8500, (0.79, 1.55)),
    "l4": (24, 300, 121, 242, 72, None, (0.30, 0.55)),
    "a10g": (24, 600, 70, None, 300, None, (1.0, 1.0)),
    "rtx-4090": (24, 1008, 165.2, 330.3, 450, 1599, (0.34, 0.74)),
    "rtx-3090": (24, 936, 71, None, 350, 1499, (0.16, 0.31)),
    "rtx-5090": (32, 1792, 209, 838, 575, 1999, (0.45, 0.69)),
    "m2-max": (96, 400, 13.5, None, 80, 4500, None),
    "m2-ultra": (192, 800, 27, None, None, 5000, None),
    "m3-max": (128, 400, 14.2, None, 90, 5000, None),
    "m3-ultra": (512, 819, 28.4, None, 180, 9500, None),
    "mi300x": (192, 5300, 1307, 2615, 750, 10000, (1.71, 1.85)),
}

# Device names as NVML, torch (ROCm) and sysctl report them, with the profile each must select.
REAL_DEVICE_NAMES = [
    ("NVIDIA H200", "cuda", "h200-sxm"),
    ("NVIDIA H100 80GB HBM3", "cuda", "h100-sxm"),
    ("NVIDIA H100 PCIe", "cuda", "h100-pcie"),
    ("NVIDIA A100-SXM4-80GB", "cuda", "a100-80gb-sxm"),
    ("NVIDIA A100-SXM4-40GB", "cuda", "a100-40gb"),
    ("NVIDIA A100-PCIE-40GB", "cuda", "a100-40gb"),
    ("NVIDIA L40S", "cuda", "l40s"),
    ("NVIDIA L4", "cuda", "l4"),
    ("NVIDIA A10G", "cuda", "a10g"),
    ("NVIDIA GeForce RTX 4090", "cuda", "rtx-4090"),
    ("NVIDIA GeForce RTX 3090", "cuda", "rtx-3090"),
    ("NVIDIA GeForce RTX 5090", "cuda", "rtx-5090"),
    ("AMD Instinct MI300X", "rocm", "mi300x"),
    ("Apple M2 Max", "mps", "m2-max"),
    ("Apple M2 Ultra", "mps", "m2-ultra"),
    ("Apple M3 Max", "mps", "m3-max"),
    ("Apple M3 Ultra", "mps", "m3-ultra"),
    ("nvidia h100 pcie", "gpu", "h100-pcie"),  # case-insensitive
    ("Intel(R) Xeon(R) Platinum 8480+", "cpu", "generic-cpu"),
    ("AMD EPYC 9654 96-Core Processor", "cpu", "generic-cpu"),
    ("Apple M2 Max", "cpu", "generic-cpu"),  # a Mac without torch's MPS runs as a CPU machine
]

# Real names of classes the reference has no figures for: they must not borrow a neighbour's.
UNKNOWN_GPU_NAMES = [
    "NVIDIA H100 NVL",
    "NVIDIA H200 NVL",
    "NVIDIA GH200 480GB",
    "NVIDIA L40",
    "NVIDIA A10",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA GeForce RTX 3090 Ti",
    "NVIDIA GeForce RTX 4090 D",
    "NVIDIA GeForce RTX 4090 Laptop GPU",
    "Tesla T4",
]


@pytest.fixture()
def profiles():
    return load_profiles()


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


VALID_PROFILE = """\
# a test profile
name = "Test GPU"
vendor = "NVIDIA"
kind = "gpu"
match = ['\\bTest\\b']
memory_gb = 16
"""


def test_every_bundled_profile_loads_with_the_reference_figures(profiles):
    assert set(profiles) == {*REFERENCE, "generic-cpu"}
    for profile_id, (memory, bandwidth, bf16, fp8, tdp, price, rent) in REFERENCE.items():
        profile = profiles[profile_id]
        assert profile.id == profile_id
        assert (profile.memory_gb, profile.memory_bandwidth_gbs) == (memory, bandwidth), profile_id
        assert profile.peak_tflops["bf16"] == bf16, profile_id
        assert profile.peak_tflops.get("fp8") == fp8, profile_id
        assert (profile.tdp_w, profile.price_usd, profile.rent_usd_per_hour) == (tdp, price, rent), profile_id
        assert profile.sources, profile_id
        assert profile.measured is False


def test_fp16_equals_bf16_on_nvidia_and_is_absent_where_the_reference_lacks_it(profiles):
    for profile in profiles.values():
        if profile.vendor == "NVIDIA":
            assert profile.peak_tflops["fp16"] == profile.peak_tflops["bf16"], profile.id
        else:
            assert "fp16" not in profile.peak_tflops, profile.id


def test_uncertain_fields_follow_the_reference_unc_marks(profiles):
    marked = {pid: set(p.uncertain) for pid, p in profiles.items() if p.uncertain}
    assert marked == {
        "h100-pcie": {"price_usd"},
        "a100-40gb": {"price_usd"},
        "l4": {"price_usd"},
        "a10g": {"peak_tflops", "tdp_w"},
        "rtx-5090": {"peak_tflops"},
        "m2-ultra": {"peak_tflops", "tdp_w"},
    }


def test_h100_sxm_profile_in_full(profiles):
    h100 = profiles["h100-sxm"]
    assert h100.name == "NVIDIA H100 SXM"
    assert (h100.vendor, h100.kind) == ("NVIDIA", "gpu")
    assert h100.peak_tflops == {"bf16": 989, "fp16": 989, "fp8": 1979}
    assert h100.sources == ("NVIDIA H100 datasheet (sparse figures halved)", "huggingface.co/hardware/h100")
    assert "6.88" in h100.notes  # the AWS price the reference gives outside the range


def test_generic_cpu_has_no_vendor_figures(profiles):
    cpu = profiles["generic-cpu"]
    assert (cpu.kind, cpu.match, cpu.measured) == ("cpu", (), False)
    assert cpu.memory_gb is cpu.memory_bandwidth_gbs is cpu.tdp_w is cpu.price_usd is None
    assert cpu.peak_tflops == {}
    assert "atomabench profile" in cpu.notes


@pytest.mark.parametrize(("device_name", "kind", "expected"), REAL_DEVICE_NAMES)
def test_match_profile_on_real_device_names(profiles, device_name, kind, expected):
    assert match_profile(device_name, kind, profiles).id == expected


@pytest.mark.parametrize("device_name", UNKNOWN_GPU_NAMES)
def test_unknown_gpu_matches_no_profile(profiles, device_name):
    assert match_profile(device_name, "cuda", profiles) is None


def test_each_real_gpu_name_matches_exactly_one_profile(profiles):
    import re

    for device_name, kind, expected in REAL_DEVICE_NAMES:
        if kind == "cpu":
            continue
        hits = [
            p.id
            for p in profiles.values()
            if any(re.search(rx, device_name, re.IGNORECASE) for rx in p.match)
        ]
        assert hits == [expected], device_name


def test_match_profile_respects_the_kind(profiles):
    assert match_profile("NVIDIA L4", "apple", profiles) is None
    assert match_profile("Apple M3 Max", "cuda", profiles) is None
    with pytest.raises(ValueError, match="tpu"):
        match_profile("TPU v5e", "tpu", profiles)


def test_cpu_machine_without_generic_profile_matches_nothing(tmp_path):
    write(tmp_path, "test-gpu.toml", VALID_PROFILE)
    assert match_profile("AMD EPYC 9654", "cpu", load_profiles(tmp_path)) is None


def test_get_profile_by_id_and_unknown_id_lists_known_ids():
    assert get_profile("l40s").memory_bandwidth_gbs == 864
    with pytest.raises(UserError) as caught:
        get_profile("h800")
    assert caught.value.field == "profile"
    assert "'h800'" in caught.value.message
    assert "h100-sxm" in caught.value.message and "generic-cpu" in caught.value.message


def test_malformed_toml_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.toml", 'name = "Bad"\nvendor = "NVIDIA"\nmemory_gb = = 80\n')
    with pytest.raises(UserError) as caught:
        load_profiles(tmp_path)
    assert caught.value.path == str(path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: malformed TOML")


def test_unknown_field_names_file_line_and_field(tmp_path):
    path = write(tmp_path, "typo.toml", VALID_PROFILE + "memroy_bandwidth_gbs = 900\n")
    with pytest.raises(UserError) as caught:
        load_profiles(tmp_path)
    assert (caught.value.path, caught.value.line, caught.value.field) == (
        str(path),
        7,
        "memroy_bandwidth_gbs",
    )
    assert "unknown field" in caught.value.message
    assert str(caught.value).startswith(f"{path}:7: memroy_bandwidth_gbs: unknown field")


@pytest.mark.parametrize(
    ("extra", "field", "line"),
    [
        ("kind_note = 1\n", "kind_note", 7),
        ('tdp_w = "a lot"\n', "tdp_w", 7),
        ("price_usd = -5\n", "price_usd", 7),
        ("rent_usd_per_hour = [3.0, 1.0]\n", "rent_usd_per_hour", 7),
        ("rent_usd_per_hour = [1.0]\n", "rent_usd_per_hour", 7),
        ('uncertain = ["speed"]\n', "uncertain", 7),
        ('id = "other"\n', "id", 7),
        ("\n[peak_tflops]\nbf16 = 10\nfp16 = -1\n", "peak_tflops.fp16", 10),
    ],
)
def test_invalid_field_names_line_and_field(tmp_path, extra, field, line):
    path = write(tmp_path, "test-gpu.toml", VALID_PROFILE + extra)
    with pytest.raises(UserError) as caught:
        load_profiles(tmp_path)
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(path), line, field)


def test_invalid_kind_and_regex_point_at_their_lines(tmp_path):
    write(tmp_path, "test-gpu.toml", VALID_PROFILE.replace('kind = "gpu"', 'kind = "tpu"'))
    with pytest.raises(UserError) as caught:
        load_profiles(tmp_path)
    assert (caught.value.line, caught.value.field) == (4, "kind")

    other = tmp_path / "other"
    other.mkdir()
    write(other, "test-gpu.toml", VALID_PROFILE.replace("\\bTest\\b", "(unclosed"))
    with pytest.raises(UserError) as caught:
        load_profiles(other)
    assert (caught.value.line, caught.value.field) == (5, "match")
    assert "invalid regex" in caught.value.message


def test_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as caught:
        load_profiles(tmp_path / "nowhere")
    assert caught.value.path == str(tmp_path / "nowhere")


def test_profiles_are_cached_per_directory_and_callers_get_a_copy(tmp_path):
    write(tmp_path, "test-gpu.toml", VALID_PROFILE)
    first = load_profiles(tmp_path)
    first.pop("test-gpu")
    write(tmp_path, "second-gpu.toml", VALID_PROFILE)
    assert list(load_profiles(tmp_path)) == ["test-gpu"]  # cached, and untouched by the caller's pop
    clear_profile_cache()
    assert list(load_profiles(tmp_path)) == ["second-gpu", "test-gpu"]
