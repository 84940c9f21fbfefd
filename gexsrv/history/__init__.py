"""Historical GEX files: POST /gex_history_url queues a job; the runner downloads, stages and imports it.

One-way shape: handlers -> queue (job table) -> runner -> download | command -> staging -> importer -> lake.
"""
