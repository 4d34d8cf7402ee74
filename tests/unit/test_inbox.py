"""The local alert inbox: e-mail over SMTP and webhook posts land in the mailbox file and on
its page, newest first."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from email.message import EmailMessage
from pathlib import Path

from lake_assets.alerts.inbox import Mailbox, running_inbox
from tests.spark.servers import free_port


def test_email_and_webhooks_arrive_in_the_mailbox(tmp_path: Path) -> None:
    mailbox = Mailbox(tmp_path / "inbox.jsonl")
    with running_inbox(mailbox, smtp_port=free_port(), http_port=free_port()) as (smtp, web):
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "lake@localhost", "team@example.org", "late"
        mail.set_content("feed lab_results is 2 hours late")
        with smtplib.SMTP("127.0.0.1", smtp) as client:
            client.send_message(mail)
        post = urllib.request.Request(f"http://127.0.0.1:{web}/slack/clinical-data",
                                      data=json.dumps({"text": "check failed"}).encode(),
                                      headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(post, timeout=10) as reply:
            assert reply.status == 202
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/messages.json", timeout=10) as r:
            listed = json.load(r)
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10) as r:
            page = r.read().decode()
    assert [m["channel"] for m in listed] == ["slack", "email"]  # newest first
    assert listed[0]["payload"] == {"text": "check failed"}
    assert listed[1]["to"] == ["team@example.org"] and listed[1]["subject"] == "late"
    assert "2 hours late" in listed[1]["text"] and "check failed" in page
    assert len(mailbox.messages()) == 2
