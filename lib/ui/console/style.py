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
.event-bar { align-items: flex-end; }
.usage p { margin: 0 0 0.5em 0; }
.usage-grid { display: grid; grid-template-columns: minmax(6em, max-content) minmax(4em, 1fr) max-content;
  gap: 0.45em 0.75em; align-items: center; }
.usage-name { overflow-wrap: anywhere; }
.usage-bar { height: 0.8em; border-radius: 0.4em; background: rgba(100,116,139,0.18); overflow: hidden; }
.usage-bar > div { height: 100%; border-radius: 0.4em; }
.usage-ok { background: #16a34a; } .usage-warn { background: #d97706; } .usage-bad { background: #dc2626; }
#health-table table { width: 100%; }
/* A phone: the five columns that say what happened (#, state, endpoint, event, repo) across the width,
   the rest hidden (an event's detail below the table has them all), instead of a table scrolled sideways. */
@media (max-width: 640px) {
  #deliveries :is(th, [role=gridcell]):is([aria-colindex="2"], [aria-colindex="7"], [aria-colindex="8"],
    [aria-colindex="9"], [aria-colindex="10"]) { display: none !important; }
  #deliveries :is(.header-table, .virtual-body) { width: 100% !important; table-layout: fixed; }
  #deliveries :is(th, [role=gridcell]) { padding-left: 0.25em !important; padding-right: 0.25em !important; }
  #deliveries :is(th, [role=gridcell]) :is(.text, .cell-wrap) { font-family: var(--font); font-size: 13px; }
  #deliveries th .text { font-size: 12px; white-space: normal !important; overflow: visible !important; }
  #deliveries :is(th, [role=gridcell]) .cell-wrap { padding-left: 0 !important; padding-right: 0 !important; }
  #deliveries th .cell-menu-button { display: none; }  /* its sort menu: the filters above do that here */
  #deliveries [role=gridcell] .text { white-space: normal !important; overflow-wrap: break-word; }
  #deliveries :is(th, [role=gridcell])[aria-colindex="1"] { width: 10% !important; min-width: 0 !important;
    max-width: none !important; flex: 0 0 10% !important; }
  #deliveries :is(th, [role=gridcell])[aria-colindex="3"] { width: 26% !important; min-width: 0 !important;
    max-width: none !important; flex: 0 0 26% !important; }
  #deliveries :is(th, [role=gridcell])[aria-colindex="4"] { width: 22% !important; min-width: 0 !important;
    max-width: none !important; flex: 0 0 22% !important; }
  #deliveries :is(th, [role=gridcell])[aria-colindex="5"] { width: 21% !important; min-width: 0 !important;
    max-width: none !important; flex: 0 0 21% !important; }
  #deliveries :is(th, [role=gridcell])[aria-colindex="6"] { width: 21% !important; min-width: 0 !important;
    max-width: none !important; flex: 0 0 21% !important; }
}
"""
