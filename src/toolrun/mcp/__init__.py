"""MCP both ways, with the official ``mcp`` SDK.

Serving: :mod:`.server` (the registry as an MCP server), mounted at ``/mcp`` by
:mod:`.http` (Streamable HTTP) and run by ``toolrun mcp`` through :mod:`.stdio`; tool ids
become MCP names as :mod:`.names` says. Importing: :mod:`.importer` turns a remote server's
tools into toolrun tools with an ``mcp`` runtime, which
:mod:`toolrun.execution.runtimes.mcp` calls through the sessions of :mod:`.client`.
Modules import the SDK only when they need it.
"""
