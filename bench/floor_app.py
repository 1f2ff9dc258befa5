"""The floor: a bare FastAPI app that calls the benchmark's function directly, over REST and
over a WebSocket with the seed's lifecycle (accept, result, close). Run with uvicorn."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, WebSocket

from toolrun.demo.functions import increment

app = FastAPI()


@app.post("/floor")
async def floor(body: dict[str, Any]) -> dict[str, Any]:
    return increment(int(body["value"]))


@app.websocket("/floor")
async def floor_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    request = await websocket.receive_json()
    job = str(uuid.uuid4())
    await websocket.send_json({"success": True, "uuid": job})
    output = increment(int(request["input_data"]["value"]))
    await websocket.send_json({"success": True, "uuid": job, "output": output})
    await websocket.close()
