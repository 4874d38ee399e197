"""kettle_client against the real server, and its retry rules against a fake one."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from kettle_client import (
    AuthenticationError,
    BadRequestError,
    Backend,
    ConflictError,
    Job,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    KettleClient,
    LimitExceededError,
    NotFoundError,
    ProgramError,
    RateLimitedError,
    TransportError,
    UnavailableError,
    guess_format,
)
from kettle_client.models import TERMINAL_STATUSES

BELL3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n'
BELL2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'
# Long enough to be caught queued or running (200,000 rotations on 20 qubits).
SLOW = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[20] q;\nfor int i in [0:9999] {\n  rx(0.1) q;\n}\n'


def test_health_ready_metrics(client: KettleClient) -> None:
    assert client.health()["status"]
    assert client.ready()["status"]
    text = client.metrics()
    assert "# TYPE" in text


def test_backend(client: KettleClient) -> None:
    b = client.backend()
    assert isinstance(b, Backend)
    assert b.name == "kettle"
    assert {"cx", "h", "rz", "u"} <= set(b.gates)
    assert {"qasm2", "qasm3"} <= set(b.formats)
    assert b.max_qubits["f64"] >= 20 and b.max_qubits["f32"] >= b.max_qubits["f64"]
    assert b.limits.max_shots > 0 and b.local_mode is True
    assert b.qubit_limit() == min(b.max_qubits["f64"], b.limits.max_qubits)
    assert b.ranks == 0 and b.ranks_max_qubits == {}


def test_a_backend_with_ranks_allows_their_qubits() -> None:
    d = {
        "max_qubits": {"f64": 28, "f32": 29},
        "limits": {"max_qubits": 34},
        "across_ranks": {"ranks": 4, "memory_budget_bytes": 1 << 34, "max_qubits": {"f64": 30, "f32": 31}},
    }
    b = Backend.from_dict(d)
    assert b.ranks == 4 and b.qubit_limit("f64") == 30 and b.qubit_limit("f32") == 31
    d["limits"] = {"max_qubits": 29}
    assert Backend.from_dict(d).qubit_limit("f64") == 29


def test_guess_format() -> None:
    assert guess_format(BELL2) == "qasm2"
    assert guess_format(BELL3) == "qasm3"
    assert guess_format("// comment\n/* block */ OPENQASM 2.0; qreg q[1];") == "qasm2"
    assert guess_format('{"format": "kettle.circuit"}') == "json"
    assert guess_format("qubit q; h q;") == "qasm3"


def test_submit_and_wait_bell(client: KettleClient) -> None:
    job = client.submit(BELL3, shots=2000, seed=11, name="bell", tags={"suite": "client"})
    assert isinstance(job, Job) and job.format == "qasm3" and job.shots == 2000 and job.seed == 11
    assert job.name == "bell" and job.tags == {"suite": "client"}
    assert job.created_at is not None and job.created_at.tzinfo is not None
    done = client.wait(job.id, timeout=60)
    assert done.status == "completed" and done.done
    assert done.started_at is not None and done.ended_at is not None and done.ended_at >= done.created_at
    res = client.result(job.id)
    (ex,) = res.executions
    assert set(ex.counts) == {"00", "11"} and sum(ex.counts.values()) == 2000
    assert abs(ex.counts["00"] - 1000) < 5 * 23
    assert ex.seed == 11 and ex.shots == 2000 and res.run_seconds >= 0


def test_submit_waiting_qasm2_with_all_result_types(client: KettleClient) -> None:
    job = client.submit(
        BELL2,
        shots=100,
        result_types=["counts", "probabilities", "statevector", {"expectation": ["Z0 Z1", "X0"]}],
        wait=30,
    )
    assert job.format == "qasm2" and job.status == "completed"
    (ex,) = job.result.executions
    assert ex.probabilities == pytest.approx({"00": 0.5, "11": 0.5}, abs=1e-12)
    assert ex.statevector == pytest.approx([2**-0.5, 0, 0, 2**-0.5], abs=1e-12)
    assert all(isinstance(a, complex) for a in ex.statevector)
    assert [e.observable for e in ex.expectations] == ["Z0 Z1", "X0"]
    assert ex.expectations[0].value == pytest.approx(1.0) and ex.expectations[1].value == pytest.approx(0.0)


def test_get_keys_hex(client: KettleClient) -> None:
    job = client.submit(BELL3, shots=50, wait=30)
    hexed = client.get(job.id, keys="hex")
    assert set(hexed.result.executions[0].counts) <= {"0x0", "0x3"}


def test_sweep_inputs(client: KettleClient) -> None:
    src = 'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] theta;\nqubit q;\nbit c;\nrx(theta) q;\nc = measure q;\n'
    thetas = [0.0, 0.5, 1.0, 3.14159]
    res = client.submit(src, inputs={"theta": thetas}, result_types=["probabilities"], wait=30).result
    assert [ex.inputs["theta"] for ex in res.executions] == thetas
    import math

    for ex, t in zip(res.executions, thetas):
        assert ex.probabilities.get("1", 0.0) == pytest.approx(math.sin(t / 2) ** 2, abs=1e-12)


def test_idempotent_submission_returns_the_same_job(client: KettleClient) -> None:
    key = f"test-{uuid.uuid4()}"
    first = client.submit(BELL3, shots=10, idempotency_key=key)
    again = client.submit(BELL3, shots=10, idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(ConflictError) as e:
        client.submit(BELL3, shots=11, idempotency_key=key)
    assert e.value.status == 409 and e.value.code == "idempotency-conflict"
    # Without a key given, every call makes its own job.
    assert client.submit(BELL3, shots=10).id != client.submit(BELL3, shots=10).id


def test_list_and_pagination(client: KettleClient) -> None:
    ids = [client.submit(BELL3, shots=1, wait=30).id for _ in range(5)]
    page = client.list_jobs(limit=2)
    assert len(page.jobs) == 2 and page.next_cursor
    seen: list[str] = []
    cursor = None
    while True:
        page = client.list_jobs(limit=2, cursor=cursor)
        seen += [j.id for j in page.jobs]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    # Newest first: the five just made, in reverse order, lead the list of
    # completed jobs (the other tests' jobs came before, or run in between).
    listed = [j.id for j in client.iter_jobs(page_size=3)]
    assert listed == seen
    positions = [listed.index(i) for i in ids]
    assert positions == sorted(positions, reverse=True)
    completed = client.list_jobs(status="completed", limit=500).jobs
    assert all(j.status == "completed" for j in completed) and set(ids) <= {j.id for j in completed}


def test_cancel_and_delete(client: KettleClient) -> None:
    job = client.submit(SLOW, result_types=["probabilities"])
    cancelled = client.cancel(job.id)
    assert cancelled.status == "cancelled" or cancelled.cancel_requested
    final = client.wait(job.id, timeout=60)
    assert final.status == "cancelled" and final.error is not None
    with pytest.raises(JobCancelledError):
        client.result(job.id)
    with pytest.raises(ConflictError) as e:
        client.cancel(job.id)
    assert e.value.job_status == "cancelled"

    other = client.submit(SLOW, result_types=["probabilities"])
    deleted = client.delete(other.id)
    assert deleted.id == other.id and (deleted.status == "cancelled" or deleted.cancel_requested)
    assert client.wait(other.id, timeout=60).status == "cancelled"


def test_circuit_svg(client: KettleClient) -> None:
    job = client.submit(BELL3, shots=10)
    svg = client.circuit_svg(job.id)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    # h, cx and two measurements, drawn from the job's own parse.
    assert svg.count('class="op gate"') == 2 and svg.count('class="op measure"') == 2
    assert 'data-rows="1"' in svg
    folded = client.circuit_svg(job.id, fold=1)
    assert 'data-rows="1"' not in folded
    with pytest.raises(BadRequestError):
        client.circuit_svg(job.id, fold=0)
    with pytest.raises(NotFoundError):
        client.circuit_svg(str(uuid.uuid4()))


def test_wait_timeout(client: KettleClient) -> None:
    job = client.submit(SLOW, result_types=["probabilities"])
    try:
        with pytest.raises(JobTimeoutError) as e:
            client.wait(job.id, timeout=0.3)
        assert e.value.job_id == job.id and e.value.last_status in ("queued", "running")
        assert "did not end within" in str(e.value)
    finally:
        client.cancel(job.id)


def test_not_found(client: KettleClient) -> None:
    with pytest.raises(NotFoundError) as e:
        client.get("no-such-job")
    assert e.value.status == 404 and e.value.code == "not-found"
    assert e.value.problem["type"] == "urn:kettle:problem:not-found"
    with pytest.raises(NotFoundError):
        client.cancel("no-such-job")


def test_program_error_has_the_line(client: KettleClient) -> None:
    src = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nh q[0];\ncx q[0], q[7];\n'
    with pytest.raises(ProgramError) as e:
        client.submit(src)
    err = e.value
    assert err.status == 422 and err.code == "invalid-program" and err.line == 5
    assert err.column is not None and err.detail
    assert str(err).startswith(f"line 5, column {err.column}: ")
    with pytest.raises(ProgramError) as e2:
        client.submit('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nfoo q[0];\n')
    assert e2.value.line == 4 and "line 4" in str(e2.value)


def test_limit_exceeded(client: KettleClient) -> None:
    limits = client.backend().limits
    with pytest.raises(LimitExceededError) as e:
        client.submit(BELL3, shots=limits.max_shots + 1)
    assert e.value.limit == "max_shots" and e.value.status == 422


def test_authentication(auth_server) -> None:  # type: ignore[no-untyped-def]
    with KettleClient(auth_server.url) as anonymous:
        assert anonymous.health()["status"]  # needs no key
        with pytest.raises(AuthenticationError) as e:
            anonymous.backend()
        assert e.value.status == 401 and e.value.code == "unauthorized"
    with KettleClient(auth_server.url, token="kt_bad_0000") as wrong:
        with pytest.raises(AuthenticationError):
            wrong.submit(BELL3)
    with KettleClient(auth_server.url, token=auth_server.key) as good:
        assert good.backend().local_mode is False
        job = good.submit(BELL3, shots=10, wait=30)
        assert job.status == "completed"
        assert [j.id for j in good.list_jobs().jobs] == [job.id]


def test_transport_error_when_nothing_listens() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with KettleClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.01) as c:
        with pytest.raises(TransportError):
            c.health()


# -- retry rules, against a fake server --------------------------------------

JOB = {
    "id": "j1", "status": "queued", "tags": {}, "priority": 0, "format": "qasm3", "qubits": 2, "shots": 10,
    "executions": 1, "precision": "f64", "seed": 1, "memory_bytes": 64, "created_at": "2024-05-01T12:00:00.123Z",
    "attempts": 0, "cancel_requested": False, "links": {"self": "/v1/jobs/j1"}, "future_field": [1, 2],
}  # fmt: skip


def fake(responses: list[httpx.Response]) -> tuple[KettleClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        r = responses.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    return KettleClient("http://kettle.test", retries=3, backoff=0.001, transport=httpx.MockTransport(handler)), seen


def problem(status: int, code: str, **extra: object) -> httpx.Response:
    body = {"type": f"urn:kettle:problem:{code}", "title": code, "status": status, "detail": code, **extra}
    headers = {"content-type": "application/problem+json"}
    if status in (429, 503):
        headers["retry-after"] = "0"
    return httpx.Response(status, headers=headers, content=json.dumps(body))


def test_submit_retries_with_the_same_idempotency_key() -> None:
    c, seen = fake(
        [
            problem(503, "shutting-down"),
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(201, json=JOB),
        ]
    )
    job = c.submit(BELL3)
    assert job.id == "j1" and job.created_at is not None and job.created_at.microsecond == 123000
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(seen) == 4 and len(keys) == 1
    assert json.loads(seen[0].content)["program"]["format"] == "qasm3"


def test_retries_run_out() -> None:
    c, seen = fake([problem(429, "too-many-jobs")] * 4)
    with pytest.raises(RateLimitedError) as e:
        c.get("j1")
    assert len(seen) == 4 and e.value.retry_after == 0


def test_no_retry_on_other_client_errors() -> None:
    c, seen = fake([problem(422, "invalid-program", line=3, column=5)])
    with pytest.raises(ProgramError) as e:
        c.submit(BELL3)
    assert len(seen) == 1 and str(e.value).startswith("line 3, column 5: ")


def test_cancel_is_not_retried_after_an_ambiguous_failure() -> None:
    c, seen = fake([httpx.ReadTimeout("slow")])
    with pytest.raises(TransportError):
        c.cancel("j1")
    assert len(seen) == 1
    c, seen = fake([problem(503, "shutting-down"), httpx.Response(200, json=dict(JOB, status="cancelled"))])
    assert c.cancel("j1").status == "cancelled" and len(seen) == 2


def test_unavailable_and_failed_job() -> None:
    c, _ = fake([problem(503, "store-failure")] * 4)
    with pytest.raises(UnavailableError):
        c.list_jobs()
    failed = dict(JOB, status="failed", error={"code": "simulation-error", "message": "boom"})
    c, _ = fake([httpx.Response(200, json=failed)])
    with pytest.raises(JobFailedError) as e:
        c.result("j1")
    assert e.value.code == "simulation-error" and "boom" in str(e.value)
    assert "failed" in TERMINAL_STATUSES


def test_a_sparse_state_is_read_by_bitstring() -> None:
    from kettle_client.models import ExecutionResult

    e = ExecutionResult.from_dict({"seed": 1, "shots": 0, "sparse_statevector": {"101": [0.6, 0], "000": [0, 0.8]}})
    assert e.statevector is None
    assert e.sparse_statevector == {"101": complex(0.6, 0), "000": complex(0, 0.8)}


def test_progress_is_read_and_drawn_while_a_job_runs(client) -> None:
    import io

    from kettle_client import JobProgress

    # A few seconds on one worker: dense layers on 20 qubits.
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', "qreg q[20];"]
    for layer in range(150):
        for q in range(20):
            lines.append(f"u3(0.1,0.2,{0.01 * layer}) q[{q}];")
            lines.append(f"cx q[{q}],q[{(q + 1) % 20}];")
    job = client.submit("\n".join(lines) + "\n", result_types=["statevector"])
    out = io.StringIO()
    result = client.result(job.id, timeout=120, progress=out)
    assert result.executions[0].statevector is not None
    drawn = out.getvalue()
    assert "completed" in drawn, drawn
    seen = [line for line in drawn.split("\r") if "%" in line]
    assert seen, f"a running job was drawn with its progress: {drawn!r}"
    ended = client.get(job.id)
    assert ended.progress is None
    assert JobProgress.from_dict({"fraction": 0.5}).seconds_left is None
