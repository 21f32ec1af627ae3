"""The milter front: the relay's policy inside Postfix or Sendmail, over the milter protocol.

``protocol`` is the codec (packets, commands, responses, option negotiation),
``server`` the asyncio server and per-connection state machine, ``act`` the
mapping of a verdict onto milter actions and replies. ``relay milter``
(``relay/commands/milter.py``) runs it.
"""
