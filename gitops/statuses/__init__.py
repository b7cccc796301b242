"""Commit statuses on GitHub and GitLab: what a run looks like on the commit that started it.

Layers, bottom up: ``model`` (values and mapping rules) and ``api`` (request, response, outcome) are
pure; ``github`` and ``gitlab`` build requests and classify answers, also pure; ``http`` is the only
module that imports httpx; ``publisher`` is the single async worker that ties them together.
"""

from gitops.statuses.model import CommitStatus, StatusState
from gitops.statuses.publisher import StatusPublisher, create_publisher
from gitops.statuses.records import Delivery, Failure, PublisherSettings, StatusJournal

__all__ = [
    "CommitStatus",
    "Delivery",
    "Failure",
    "PublisherSettings",
    "StatusJournal",
    "StatusPublisher",
    "StatusState",
    "create_publisher",
]
