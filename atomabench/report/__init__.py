"""The leaderboard: a static site (HTML, data.js, CSV, JSON) and a Markdown table from the store.

``build_site(store, out_dir)`` writes everything into one folder that works from ``file://`` or any
static host; ``build_markdown(store)`` returns the leaderboard as a Markdown table. Both read the
store through its public API only and take prices and forecasts from ``atomabench.economics``.
"""

from atomabench.report.markdown import build_markdown
from atomabench.report.site import DEFAULT_OUT, SiteSummary, build_site

__all__ = ["DEFAULT_OUT", "SiteSummary", "build_markdown", "build_site"]
