"""The pages' live feeds: which parts of the page changed since each page was last sent.

A page's pending work is a set of topic names, not a queue of messages: a burst of property
updates marks "status" once and the page gets one fresh status when its sender is free. So
a feed's memory is bounded by the number of topics whatever happens, a slow page only delays
itself, and the hub's observers return at once. The number of pages is bounded too.
"""

from __future__ import annotations

import asyncio

TOPICS = frozenset({"status", "history", "messages", "log", "preview", "clients", "frames"})
MAX_PAGES = 32


class TooManyPages(Exception):
    pass


class PageFeed:
    """One open page: its pending topics and the cursors of what it has been sent."""

    def __init__(self) -> None:
        self.pending: set[str] = set(TOPICS)  # a new page gets everything once
        self.wake = asyncio.Event()
        self.wake.set()
        self.cursors: dict[str, int] = {}  # sequence numbers sent, per ring or history

    def mark(self, topic: str) -> None:
        self.pending.add(topic)
        self.wake.set()

    async def next_topics(self) -> set[str]:
        """Wait until something is pending, then take all of it."""
        await self.wake.wait()
        self.wake.clear()
        topics, self.pending = self.pending, set()
        return topics


class Pages:
    def __init__(self, max_pages: int = MAX_PAGES) -> None:
        self._feeds: set[PageFeed] = set()
        self._max_pages = max_pages

    def open(self) -> PageFeed:
        if len(self._feeds) >= self._max_pages:
            raise TooManyPages(f"{self._max_pages} pages are open already")
        feed = PageFeed()
        self._feeds.add(feed)
        return feed

    def close(self, feed: PageFeed) -> None:
        self._feeds.discard(feed)

    def mark(self, topic: str) -> None:
        if topic not in TOPICS:
            raise ValueError(f"no topic {topic!r}")
        for feed in self._feeds:
            feed.mark(topic)

    def __len__(self) -> int:
        return len(self._feeds)
