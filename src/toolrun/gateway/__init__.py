"""An OpenAI-compatible gateway, with tool calling for models that have none (seed 003).

Reading a model's reply (no I/O):

- :mod:`.validate`: the offered ``tools[]`` under Python names; each call's arguments bound and
  checked against the tool's JSON Schema.
- :mod:`.prompt`: the tools as Pydantic models and typed stubs, and the instructions;
  :mod:`.fold`: a conversation (assistant ``tool_calls``, ``tool`` results) as plain turns.
- :mod:`.parse`: the calls, prose and reasoning of a reply, built on :mod:`.find` (where the
  code is), :mod:`.read` (the calls in it) and :mod:`.literals` (argument values).
- :mod:`.record`: calls of code that loops or branches, collected in the sandbox tier.

Serving it (``/v1``):

- :mod:`.schema` (the request), :mod:`.completion` (the answer), :mod:`.streaming` (its SSE).
- :mod:`.upstreams` (model map, modes), :mod:`.emulate` and :mod:`.native` (one model turn
  each way), :mod:`.server_tools` (``toolrun_tools`` run as jobs), :mod:`.service` (the
  :class:`~toolrun.gateway.service.Gateway` tying them together).
- :mod:`.auth` (keys, rate limits), :mod:`.log` (the redacted request log), :mod:`.routes`
  (the FastAPI routes), :mod:`.app` (``toolrun gateway``); :mod:`.errors` (both error families).
"""
