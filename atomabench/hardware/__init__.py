"""The hardware room: probe this machine and look up published figures for its hardware class.

``probe()`` imports pynvml and torch only when called, so importing this package stays cheap.
"""

from atomabench.hardware.probe import probe
from atomabench.hardware.profiles import get_profile, load_profiles, match_profile

__all__ = ["get_profile", "load_profiles", "match_profile", "probe"]
