"""A logging filter that masks secrets in whatever a log record would print."""

from __future__ import annotations

import logging

from core.secrets.redact import Redactor


class RedactingFilter(logging.Filter):
    """Attach to a handler: masks the formatted message, exception and stack text, since a
    secret can sit in `record.args` or a traceback, never only in `record.msg`."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redactor.redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True
