"""The console's CSS: the verdict's colours, the lock panel's width, the Hub usage bars.

Kept apart so the modules that lay the console out read as layout, not as stylesheet.
"""

CSS = """
#console-summary { border-radius: 6px; }
.verdict-ok { border-left: 4px solid #16a34a; padding: 0.5em 1em; background: rgba(22,163,74,0.08); }
.verdict-warn { border-left: 4px solid #d97706; padding: 0.5em 1em; background: rgba(217,119,6,0.10); }
.verdict-bad { border-left: 4px solid #dc2626; padding: 0.5em 1em; background: rgba(220,38,38,0.08); }
.verdict-idle { border-left: 4px solid #64748b; padding: 0.5em 1em; background: rgba(100,116,139,0.08); }
#console-lock { max-width: 560px; }
.console-bar { align-items: center; }
.usage p { margin: 0 0 0.5em 0; }
.usage-row { display: grid; grid-template-columns: minmax(6em, max-content) 1fr max-content; gap: 0.75em;
  align-items: center; margin: 0.3em 0; }
.usage-bar { height: 0.8em; border-radius: 0.4em; background: rgba(100,116,139,0.18); overflow: hidden; }
.usage-bar > div { height: 100%; border-radius: 0.4em; }
.usage-ok { background: #16a34a; } .usage-warn { background: #d97706; } .usage-bad { background: #dc2626; }
#health-table table { width: 100%; }
"""
