"""Notifications: operator alerts and trade proposals, sent in the background so that no request waits on them.

Channels: always a log line; the alert webhook for alerts (JSON with both `content` and `text`, which Discord and
Slack incoming webhooks accept); Discord's REST API with a bot token, as the original did: each trade proposal
to channel ALT_CHANNEL_OPTION_TRADES, and a short direct message to DISCORD_DM_USER_ID per alert and proposal.

Each send is a task with short timeouts; a failure is logged and counted, never raised. At most max_in_flight
sends run at once; past that a send is dropped and counted, so a dead endpoint cannot pile up tasks.
"""

import asyncio
import logging
from collections import Counter

import msgspec
from tornado.httpclient import AsyncHTTPClient

from gexsrv import __version__

log = logging.getLogger("gexsrv.notify")

CONNECT_TIMEOUT = 3.0
REQUEST_TIMEOUT = 5.0
MAX_IN_FLIGHT = 32
DISCORD_LIMIT = 1900  # Discord refuses messages over 2,000 characters
CHANNELS = ("webhook", "discord_channel", "discord_dm")


class DmChannel(msgspec.Struct):
    id: str


DM_CHANNEL = msgspec.json.Decoder(DmChannel)


def proposal_messages(row):
    """The original's channel message for a trade row, and the short direct message."""
    quantity = int(row["quantity"] or 0)
    price = row.get("execution_price") or row["price"] or 0.0
    trade = f"{row['symbol']} {row['side'] or '?'} qty {quantity}"
    return (f"CONFIRM PROPOSAL — {trade} -> propose half {max(1, quantity // 2)} LMT @ ${price:.2f}",
            f"Trade proposal: {trade} @ ${price:.2f}")


class Notifier:
    def __init__(self, webhook_url="", discord_api_url="https://discord.com", bot_token="", channel_id="",
                 dm_user_id="", max_in_flight=MAX_IN_FLIGHT, timeout=REQUEST_TIMEOUT):
        self.webhook_url = webhook_url
        self.timeout = timeout
        self.api = discord_api_url.rstrip("/") + "/api/v10"
        self.channel_id = channel_id if bot_token else ""
        self.dm_user_id = dm_user_id if bot_token else ""
        self.discord_headers = {"Authorization": f"Bot {bot_token}",
                                "User-Agent": f"DiscordBot (gexsrv, {__version__})"}
        self.dm_channel_id = None
        self.dm_lock = asyncio.Lock()
        self.max_in_flight = max_in_flight
        self.tasks = set()
        self.counts = {channel: Counter() for channel in CHANNELS}
        self.client = AsyncHTTPClient(force_instance=True, max_clients=max_in_flight, max_buffer_size=1 << 20)
        if (channel_id or dm_user_id) and not bot_token:
            log.warning("a Discord channel or user is set but discord_bot_token is empty: Discord notifications off")

    @classmethod
    def from_settings(cls, conf):
        return cls(conf.alert_webhook_url, conf.discord_api_url, conf.discord_bot_token,
                   conf.alt_channel_option_trades, conf.discord_dm_user_id)

    def alert(self, message):
        """An operator alert: log, alert webhook, Discord DM."""
        log.error("ALERT %s", message)
        if self.webhook_url:
            body = {"content": message[:DISCORD_LIMIT], "text": message}
            self._spawn("webhook", self._post, self.webhook_url, body)
        if self.dm_user_id:
            self._spawn("discord_dm", self._direct_message, message[:DISCORD_LIMIT])

    def trade_proposal(self, row):
        """A stored option_trades_super_algo trade: log, the original's message to the channel, a short DM."""
        message, short = proposal_messages(row)
        log.info("%s", message)
        if self.channel_id:
            self._spawn("discord_channel", self._channel_message, self.channel_id, message)
        if self.dm_user_id:
            self._spawn("discord_dm", self._direct_message, short)

    def report(self):
        channels = {"webhook": bool(self.webhook_url), "discord_channel": bool(self.channel_id),
                    "discord_dm": bool(self.dm_user_id)}
        return {"in_flight": len(self.tasks),
                **{name: {"enabled": on, "sent": self.counts[name]["sent"], "failed": self.counts[name]["failed"],
                          "dropped": self.counts[name]["dropped"]} for name, on in channels.items()}}

    async def close(self):
        """Let the sends in flight finish or time out (a DM may take two requests), cancel any left, free the
        client."""
        if self.tasks:
            _, late = await asyncio.wait(set(self.tasks), timeout=2 * self.timeout + 1)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self.client.close()

    def _spawn(self, channel, send, *args):
        if len(self.tasks) >= self.max_in_flight:
            self.counts[channel]["dropped"] += 1
            log.warning("%s notification dropped: %d sends already in flight", channel, len(self.tasks))
            return
        task = asyncio.create_task(self._send(channel, send, *args))
        self.tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self.tasks.discard)

    async def _send(self, channel, send, *args):
        try:
            await send(*args)
        except Exception as exc:  # whatever went wrong, a notification must not take anything down with it
            self.counts[channel]["failed"] += 1
            log.warning("%s notification failed: %s", channel, exc)
        else:
            self.counts[channel]["sent"] += 1

    async def _post(self, url, body, headers=None):
        return await self.client.fetch(
            url, method="POST", body=msgspec.json.encode(body), connect_timeout=min(CONNECT_TIMEOUT, self.timeout),
            request_timeout=self.timeout, headers={"Content-Type": "application/json", **(headers or {})})

    async def _channel_message(self, channel_id, content):
        await self._post(f"{self.api}/channels/{channel_id}/messages", {"content": content}, self.discord_headers)

    async def _direct_message(self, content):
        await self._channel_message(await self._dm_channel(), content)

    async def _dm_channel(self):
        """The DM channel with the user, opened once (Discord returns the same channel every time)."""
        async with self.dm_lock:
            if self.dm_channel_id is None:
                response = await self._post(f"{self.api}/users/@me/channels", {"recipient_id": self.dm_user_id},
                                            self.discord_headers)
                self.dm_channel_id = DM_CHANNEL.decode(response.body).id
        return self.dm_channel_id
