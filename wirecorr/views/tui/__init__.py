"""The Textual TUI: a timeline of syscalls and packets with their links (`wirecorr tui`, `wirecorr live`).

One module per concern: rows.py (the compact row index), index.py (Session → rows and
row facts), loader.py / live.py (where events come from), timeline.py (the Line-API
view), detail.py, connections.py, findings_pane.py, display_filter.py, keys.py, app.py.
"""
