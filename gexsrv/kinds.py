"""Every kind of record gexsrv stores, with its writer: the one place that names them all, for whoever opens a
Store (the server, the import and backfill commands). The store itself knows kinds only through this mapping."""

from gexsrv import gexwrite
from gexsrv.uw import writer

WRITERS = {**gexwrite.WRITERS, **writer.WRITERS}
