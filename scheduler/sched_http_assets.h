// sched_http_assets.h: the dashboard's page shell, style sheet and script,
// embedded in the binary at build time from scheduler/dashboard/ (by
// scheduler/embed.py), so the dashboard needs no file and no network.
#ifndef CANOPY_SCHED_HTTP_ASSETS_H
#define CANOPY_SCHED_HTTP_ASSETS_H

extern const char sched_asset_index_html[]; // says {{page}} where the page's name goes
extern const char sched_asset_app_css[];
extern const char sched_asset_app_js[];

#endif
