"""Web pages over the capture inbox: a list that refreshes itself, one page per message, raw source.

Every message is untrusted input: all text is HTML-escaped, the HTML part is shown only inside a
sandboxed `srcdoc` iframe, and the pages carry a Content-Security-Policy that forbids scripts
except the list page's own refresh script (by nonce).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from html import escape
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from mailpulse.demo.inbox import CapturedMessage, CaptureInbox

_LIST_PAGE_LIMIT = 200

_CSS = """
:root { color-scheme: light; --ink: #1f2933; --muted: #6b7785; --line: #e3e8ee;
  --accent: #2457c5; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 14px 24px;
  display: flex; align-items: baseline; gap: 16px; }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: var(--muted); }
main { max-width: 1100px; margin: 24px auto; padding: 0 24px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
table { width: 100%; border-collapse: collapse; background: #fff;
  border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
th, td { text-align: left; padding: 8px 12px; border-bottom: 1px solid var(--line);
  vertical-align: top; overflow-wrap: anywhere; }
th { background: #fbfcfd; font-weight: 600; color: var(--muted); font-size: 12px;
  text-transform: uppercase; letter-spacing: .04em; }
tbody tr:hover { background: #f2f6fc; }
td.time { white-space: nowrap; color: var(--muted); font-variant-numeric: tabular-nums; }
.empty { padding: 32px; text-align: center; color: var(--muted); background: #fff;
  border: 1px dashed var(--line); border-radius: 6px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin-bottom: 20px; }
.card h2 { font-size: 13px; margin: 0; padding: 10px 14px; border-bottom: 1px solid var(--line);
  color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card table { border: 0; border-radius: 0; }
.card th { width: 160px; text-transform: none; letter-spacing: 0; font-size: 13px; }
iframe { display: block; width: 100%; height: 640px; border: 0; resize: vertical;
  overflow: auto; }
pre { margin: 0; padding: 14px; white-space: pre-wrap; overflow-wrap: anywhere;
  font: 13px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; }
.yes { background: #e3f6e8; color: #1c7a3a; } .no { background: #fdecea; color: #a8281e; }
summary { padding: 10px 14px; cursor: pointer; color: var(--muted); }
nav { margin-bottom: 16px; display: flex; gap: 16px; }
"""

_REFRESH_SCRIPT = """
(function () {
  const body = document.getElementById("messages");
  const count = document.getElementById("count");
  let shown = body.dataset.signature;
  function cell(row, text, cls) {
    const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td;
  }
  async function refresh() {
    try {
      const answer = await fetch(body.dataset.api, {headers: {accept: "application/json"}});
      if (!answer.ok) return;
      const data = await answer.json();
      const signature = data.received_count + ":" + data.messages.length;
      if (signature === shown) return;
      shown = signature;
      count.textContent = data.received_count + " received";
      body.replaceChildren();
      for (const m of data.messages) {
        const row = body.insertRow();
        cell(row, m.received_at_display, "time");
        cell(row, m.to);
        const link = document.createElement("a");
        link.href = m.url; link.textContent = m.subject || "(no subject)";
        row.insertCell().append(link);
        cell(row, m.from);
      }
    } catch (e) { /* the server may be restarting; try again next tick */ }
  }
  setInterval(refresh, 2000);
})();
"""


def inbox_router(inbox: CaptureInbox, *, prefix: str = "/inbox") -> APIRouter:
    """Routes for the inbox pages, already under `prefix`: `app.include_router(inbox_router(x))`.

    `GET {prefix}` list page, `GET {prefix}/{id}` one message, `GET {prefix}/{id}/raw` its
    source, `GET {prefix}/api/messages?limit=&to=` JSON, newest first.
    """
    router = APIRouter(prefix=prefix, tags=["demo inbox"])
    list_limit = min(_LIST_PAGE_LIMIT, inbox.capacity)

    def message_or_404(message_id: int) -> CapturedMessage:
        message = inbox.get(message_id)
        if message is None:
            raise HTTPException(
                status_code=404,
                detail=f"no message {message_id} in the inbox: it never arrived or was dropped "
                f"(the inbox keeps the latest {inbox.capacity})",
            )
        return message

    @router.get("", name="inbox_list", response_class=HTMLResponse)
    def list_page(request: Request) -> HTMLResponse:
        messages = inbox.messages(limit=list_limit)
        api_url = f"{request.url_for('inbox_api_messages').path}?limit={list_limit}"
        rows = "".join(_list_row(request, message) for message in messages)
        nonce = secrets.token_urlsafe(16)
        page = _page(
            "Inbox",
            f"""
<header><h1>Demo inbox</h1>
<span class="meta">SMTP on {escape(inbox.host)}:{inbox.port}</span>
<span class="meta" id="count">{inbox.received_count} received</span></header>
<main>
<table><thead><tr><th>Received</th><th>To</th><th>Subject</th><th>From</th></tr></thead>
<tbody id="messages" data-api="{escape(api_url)}"
 data-signature="{inbox.received_count}:{len(messages)}">{rows}</tbody></table>
{"" if messages else '<p class="empty">No mail yet. It shows up here as it arrives.</p>'}
</main>
<script nonce="{nonce}">{_REFRESH_SCRIPT}</script>""",
        )
        return HTMLResponse(page, headers=_security_headers(script_nonce=nonce))

    @router.get("/api/messages", name="inbox_api_messages")
    def api_messages(
        request: Request,
        limit: int = Query(50, ge=1, le=inbox.capacity),
        to: str | None = Query(None, description="only messages with this envelope recipient"),
    ) -> dict[str, Any]:
        return {
            "received_count": inbox.received_count,
            "messages": [_summary(request, m) for m in inbox.messages(limit=limit, to=to)],
        }

    @router.get("/{message_id:int}", name="inbox_message", response_class=HTMLResponse)
    def message_page(request: Request, message_id: int) -> HTMLResponse:
        message = message_or_404(message_id)
        return HTMLResponse(_message_page(request, message), headers=_security_headers())

    @router.get("/{message_id:int}/raw", name="inbox_raw")
    def raw_source(message_id: int) -> Response:
        message = message_or_404(message_id)
        return Response(
            message.raw,
            media_type="text/plain; charset=utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    return router


def _security_headers(script_nonce: str | None = None) -> dict[str, str]:
    script_src = f"'nonce-{script_nonce}'" if script_nonce else "'none'"
    # Emails load remote images; nothing else leaves the page, and no script runs but ours.
    policy = (
        f"default-src 'none'; script-src {script_src}; style-src 'unsafe-inline'; "
        "img-src http: https: data: cid:; connect-src 'self'; frame-src 'self' about:; "
        "base-uri 'none'; form-action 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · mailpulse demo</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def _display_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _recipients(message: CapturedMessage) -> str:
    return message.to_header or ", ".join(message.rcpt_tos)


def _summary(request: Request, message: CapturedMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "received_at": datetime.fromtimestamp(message.received_at, UTC).isoformat(),
        "received_at_display": _display_time(message.received_at),
        "mail_from": message.mail_from,
        "rcpt_tos": message.rcpt_tos,
        "from": message.from_header,
        "to": _recipients(message),
        "subject": message.subject,
        "date": message.date,
        "message_id": message.message_id,
        "dkim_signed": message.has_dkim_signature,
        "size": len(message.raw),
        "url": request.url_for("inbox_message", message_id=message.id).path,
        "raw_url": request.url_for("inbox_raw", message_id=message.id).path,
    }


def _list_row(request: Request, message: CapturedMessage) -> str:
    url = request.url_for("inbox_message", message_id=message.id).path
    return (
        f'<tr><td class="time">{_display_time(message.received_at)}</td>'
        f"<td>{escape(_recipients(message))}</td>"
        f'<td><a href="{escape(url)}">{escape(message.subject or "(no subject)")}</a></td>'
        f"<td>{escape(message.from_header)}</td></tr>"
    )


def _field_rows(fields: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in fields)


def _message_page(request: Request, message: CapturedMessage) -> str:
    signed = message.has_dkim_signature
    dkim = (
        f'<span class="badge {"yes" if signed else "no"}">{"signed" if signed else "none"}</span>'
    )
    summary = _field_rows(
        [
            ("From", message.from_header),
            ("To", message.to_header),
            ("Subject", message.subject),
            ("Date", message.date),
            ("Message-ID", message.message_id),
            ("Envelope from", message.mail_from or "<>"),
            ("Envelope to", ", ".join(message.rcpt_tos)),
            ("Received", f"{_display_time(message.received_at)} UTC"),
            ("Size", f"{len(message.raw):,} bytes"),
        ]
    )
    html_part = message.html
    text_part = message.text
    sections = [
        f'<section class="card"><h2>Message</h2><table>{summary}'
        f"<tr><th>DKIM-Signature</th><td>{dkim}</td></tr></table></section>"
    ]
    if html_part is not None:
        # An empty sandbox attribute denies scripts, forms, popups and same-origin access;
        # escape() with quote=True keeps every quote and bracket inside the attribute.
        sections.append(
            '<section class="card"><h2>HTML part</h2>'
            f'<iframe sandbox="" referrerpolicy="no-referrer" title="HTML part" '
            f'srcdoc="{escape(html_part, quote=True)}"></iframe></section>'
        )
    if text_part is not None:
        sections.append(
            f'<section class="card"><h2>Text part</h2><pre>{escape(text_part)}</pre></section>'
        )
    sections.append(
        '<section class="card"><details><summary>'
        f"All headers ({len(message.headers)})</summary><table>{_field_rows(message.headers)}"
        "</table></details></section>"
    )
    list_url = request.url_for("inbox_list").path
    raw_url = request.url_for("inbox_raw", message_id=message.id).path
    return _page(
        message.subject or "(no subject)",
        f"""
<header><h1>{escape(message.subject or "(no subject)")}</h1>
<span class="meta">#{message.id}</span></header>
<main><nav><a href="{escape(list_url)}">← Inbox</a><a href="{escape(raw_url)}">Raw source</a></nav>
{"".join(sections)}</main>""",
    )
