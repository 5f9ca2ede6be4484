"""The classification rules, as data: ordered tables read by bounces/classify.py.

The first matching row wins, so each table is ordered from the most specific wording to the
most general. The text tables are matched against the diagnostic text (case-insensitive); the
status table against the RFC 3463 code. Wording comes from real servers (Postfix, Exim,
Sendmail, qmail, Exchange/Office 365, Gmail, Yahoo, AOL, Mimecast, Proofpoint, ...).
"""

from __future__ import annotations

import re

HARD = "hard"
SOFT = "soft"
SENDER_SIDE = "sender_side"
COMPLAINT = "complaint"
UNSUBSCRIBE_REQUEST = "unsubscribe_request"
AUTH_FAILURE_REPORT = "auth_failure_report"
NOT_A_FAILURE = "not_a_failure"

CLASSES = (
    HARD,
    SOFT,
    SENDER_SIDE,
    COMPLAINT,
    UNSUBSCRIBE_REQUEST,
    AUTH_FAILURE_REPORT,
    NOT_A_FAILURE,
)

# RFC 5965 Feedback-Type -> class. Unknown types are treated as complaints (RFC 5965 says a
# report is about a message the recipient did not want).
FEEDBACK_TYPES: dict[str, str] = {
    "abuse": COMPLAINT,
    "fraud": COMPLAINT,
    "virus": COMPLAINT,
    "other": COMPLAINT,
    "not-spam": NOT_A_FAILURE,
    "opt-out": UNSUBSCRIBE_REQUEST,
    "opt-out-list": UNSUBSCRIBE_REQUEST,
    "auth-failure": AUTH_FAILURE_REPORT,
    "dkim": AUTH_FAILURE_REPORT,
}

# RFC 3464 Action values that are not failures at all.
NOT_FAILURE_ACTIONS = ("delayed", "delivered", "relayed", "expanded")


def _table(rows: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pattern, re.I), klass) for pattern, klass in rows]


# The recipient's domain does not exist or takes no mail. Only DNS and the domain's own servers
# say this, never a content filter, so it needs no corroboration from the SMTP phase.
DEAD_DOMAIN_WORDING = (
    r"host (or domain name )?not found|dns lookup failure: host \S+ not found|host unknown|"
    r"unknown host|domain (name )?not found|"
    r"domain (does not|doesn't) exist|no such domain|nxdomain|unrouteable mail domain|"
    r"no mx (record|host)|name or service not known|domain is not (valid|in use)|"
    r"unknown domain|invalid domain|mail for .{0,60} loops back|"
    r"no (valid )?(mail exchanger|mx)|does not accept (any )?mail|null mx|"
    r"domain (has been )?(suspended|expired)|not a valid domain|domain is not reachable|"
    r"indicated no smtp service"
)
DEAD_DOMAIN_RE = re.compile(DEAD_DOMAIN_WORDING, re.I)

# The mailbox exists but is full, or is disabled for now: what the recipient's own mail system
# says about a mailbox it holds. parse.py also looks for these in a notice's lead text.
MAILBOX_FULL_WORDING = (
    r"mailbox (is )?full|mailbox.{0,20}(over|exceeded).{0,10}quota|over ?quota|quota "
    r"(exceeded|full)|exceeded (the|his|her|its)? ?(storage|mailbox)|insufficient "
    r"(disk )?(space|storage)|mail ?box.{0,30}(is )?full|too many messages in (the )?"
    r"mailbox|user is over|storage (quota|limit)|full mailbox|mailfolder is full|"
    r"disk quota|exceeds? (the )?(size|storage) limit|out of storage|"
    # Japanese carriers: "the destination mailbox is full".
    r"メールボックスが(一杯|いっぱい)|容量(超過|オーバー)"
)
MAILBOX_DISABLED_WORDING = (
    r"(account|mailbox|address|recipient|user)\b.{0,40}\b(is |has been |was )?(disabled|"
    r"suspended|locked|discontinued|frozen)|disabled (recipient|user|account|mailbox)|"
    r"temporar\w* (locked|disabled|suspended)"
)
MAILBOX_STATE_RE = re.compile(f"{MAILBOX_FULL_WORDING}|{MAILBOX_DISABLED_WORDING}", re.I)


TEXT_RULES = _table(
    [
        # -- The mailbox exists but is full: transient by RFC 3463 (X.2.2), whatever the 5xx.
        (MAILBOX_FULL_WORDING, SOFT),
        # -- Message size or a per-message limit: the next message may pass.
        (
            r"message (size )?(is )?too (big|large)|exceeds? (the )?(maximum|max)? ?(message )?"
            r"size|size limit|message length exceeds",
            SOFT,
        ),
        # -- Postfix's DNS lookup failed for now ("Host not found, try again"): temporary.
        (r"name service error|not found, try again", SOFT),
        # -- Office 365 edge blocking answers a recipient missing from the directory with
        #    "5.4.1 Recipient address rejected: Access denied": the address is dead.
        (r"recipient address rejected: access denied", HARD),
        # -- au/KDDI (ezweb) and NTT docomo answer their subscribers' sender filters with an
        #    empty-text "550 : User unknown" or "Unknown user" after DATA: the address exists.
        (r"\b550:? : user unknown", SOFT),
        # -- A refusal in the greeting banner (Postfix: "refused to talk to me") comes before
        #    any sender or recipient was named: only the connecting host was judged.
        (r"refused to talk to me", SENDER_SIDE),
        # -- A disabled, suspended or locked mailbox may come back (RFC 3463 X.2.1 "this may
        #    be a temporary condition"): count it as soft, do not kill the address.
        (MAILBOX_DISABLED_WORDING, SOFT),
        # -- The recipient chose not to take mail from this sender (Facebook's "recipient
        #    preferences"): the address exists, the refusal is the recipient's setting.
        (r"due to (the )?recipient('s)? preferences", SOFT),
        # -- A mailing list refusing the poster (Google Groups: "you may not have permission to
        #    post"; its notices come in the sender's language but all link to its help pages):
        #    the refusal is about who sent, not about the list address.
        (r"groups\.google\.com/support|permission to post", SENDER_SIDE),
        # -- A notice that offers alternative causes commits to none of them (cPanel's Exim: "The
        #    account or domain may not exist, they may be blacklisted, or missing the proper dns
        #    entries"): neither a dead address nor a block list, so soft, and repeats count.
        (
            r"may not exist.{0,80}may be (black|block) ?listed|"
            r"may be (black|block) ?listed.{0,80}may not exist",
            SOFT,
        ),
        # -- Block lists and reputation of the sending IP or domain: the SENDER is refused.
        (
            r"spamhaus|spamcop|barracuda|block ?list|black ?list|blacklisted|blocklisted|"
            r"\bdnsbl\b|\brbl\b|(?<!not )listed (in|on|at)|sorbs|\bproofpoint\b|cloudmark|"
            r"senderbase|\bsending ips?\b|"
            r"reputation|\bbanned\b|poor reputation|ip (address )?(is )?block|(has been|is|are) "
            r"(temporarily )?blocked|blocked (by|using|because|due)|your (ip|host|domain|server)"
            r"|client host .{0,60}(rejected|blocked)|access denied|not allowed to send|"
            r"service unavailable.{0,40}client host|my name was rejected|not authori[sz]ed|"
            r"mail from .{0,60} (refused|rejected)|"
            r"connection (refused|rejected|dropped) (from|by)|ptr|reverse (dns|lookup|hostname)|"
            r"rdns|(rejected|refused|invalid|bad|denied).{0,30}\b(helo|ehlo)\b|"
            r"\b(helo|ehlo)\b.{0,30}(rejected|refused|invalid|denied|not allowed)|"
            r"sender (address )?rejected|sender.{0,30}(not|un)authori[sz]ed|"
            r"sender (domain|verify)|envelope.?from|sender (is )?(denied|blocked)|"
            r"rejected by (sender|the recipient's) (policy|filter)",
            SENDER_SIDE,
        ),
        # -- Our own sender address or posting rights are refused (mailing-list servers such
        #    as Google Groups say "may not exist, or you may not have permission to post").
        (
            r"not allowed to post|"
            r"(unroutable|invalid|unknown|unverified) sender|"
            r"sender address|from: domain is invalid|too many unwanted messages|"
            r"invalid ip for sending|network not allowed|frequency limit|protocol violation|"
            r"\bmail rejected\b",
            SENDER_SIDE,
        ),
        # -- Authentication of the sender: SPF, DKIM, DMARC, TLS, relay permission.
        (
            r"\bspf\b|\bdkim\b|\bdmarc\b|authenticat|unauthenticated|not authori[sz]ed to relay|"
            # Gmail's "Send mail as" through the sender's own server that refused to log in.
            r"advertise auth|'send mail as'|"
            r"relay(ing)? (access )?(denied|not permitted|prohibited)|we do not relay|"
            r"unable to relay|relay not permitted|starttls|\btls\b|encryption required",
            SENDER_SIDE,
        ),
        # -- Content and spam filtering, policy: about what was sent, not about the address.
        (
            r"\bspam\b|junk|unsolicited|bulk mail|content (rejected|filter|policy)|"
            r"message (was |has been )?(rejected|refused|blocked) (as|because|due|for|by)|"
            r"\bvirus|malware|phish|suspicious|policy (violation|reasons|rejection|restriction)|"
            r"(violat\w+|due to|by|against|our|local|security|content|domain's|mail) polic|"
            r"not accepted for policy|header (is )?(missing|invalid|malformed)|"
            # "rfc822;" is the address type of a DSN field, not a complaint about format.
            r"rfc ?(2822|5322|822)\b(?!\s*;)"
            r"|message-id .{0,30}(missing|invalid|duplicate)|"
            r"\bheader\b.{0,30}(reject|invalid|duplicate)|"
            r"(url|link|attachment)s? .{0,40}(blocked|block ?list|not allowed|reject|prohibited)|"
            r"prohibited|denied by|administrative prohibition",
            SENDER_SIDE,
        ),
        # -- Rate and connection limits: the sender is going too fast.
        (
            r"rate limit|too many (connections|messages|recipients|mails|emails|concurrent)|"
            r"(sending|receiving) (too fast|rate)|throttl|try again later.{0,30}(rate|too many)|"
            r"temporarily deferred|exceeded (the )?(rate|connection|sending)|unusual rate|"
            r"greylist|gray ?list|deferred due to",
            SENDER_SIDE,
        ),
        # -- Syntax errors in what we sent over SMTP.
        (
            r"syntax error|command (not )?(recognized|unrecognized)|bad sequence|"
            r"line too long|5\.5\.2|improper command",
            SENDER_SIDE,
        ),
        # -- The address does not exist: dead, suppress at once.
        (
            r"user ?(name )?unknown|unknown (user|recipient|local|mailbox|address|alias)|"
            r"no such (user|mailbox|recipient|address|account|person)|"
            r"(recipient|user|mailbox|address|account|email address|e-mail address) "
            r"(\S+ )?(does not|doesn't|did not|does no longer|no longer) exist|"
            r"does not exist|doesn't exist|invalid (recipient|mailbox|address|user)|"
            r"(recipient|mailbox|user|address) (is )?(invalid|unknown|not found|not valid)|"
            r"not (a )?(valid|known) (recipient|user|mailbox)|mailbox unavailable|"
            r"mailbox (is )?(not available|disabled|inactive)|unrouteable address|"
            r"unroutable address|undeliverable address|"
            r"account (has been )?(deleted|closed|terminated|removed|inactive|expired)|"
            r"no mailbox|mailbox not found|not our customer|no longer (valid|available|in use|"
            r"with)|unknown or illegal alias|addressee unknown|not listed in|"
            r"recipient not (found|valid)|user not found|could not be found|"
            r"bad destination mailbox|name is not recognized|mailbox .{0,30} does not exist|"
            r"this user doesn't have|is not a valid|invalid address|account is unavailable|"
            r"no longer accepts mail|has moved|address couldn't be found|invalid final delivery|"
            r"recipient name is not recognized|deactivated|^\s*550 #?5\.1\.\d+ address rejected",
            HARD,
        ),
        # -- The domain does not exist or has no mail server: dead.
        (DEAD_DOMAIN_WORDING, HARD),
        # -- Temporary trouble on the receiving side: retry later.
        (
            r"temporar|try again|deferred|timed? ?out|connection (refused|reset|lost|closed)|"
            r"too many hops|loop|system (error|not available)|service (is )?(not |un)available|"
            r"local error|resources|could not connect|retry (time|timeout)|delivery time expired|"
            r"undeliverable for \d+|been (queued|delayed)|gave up|giving up",
            SOFT,
        ),
    ]
)

# RFC 3463 codes that name a dead address precisely: with dead-address wording anywhere in the
# text they win over other words in it (quoted headers, boilerplate about attachments, ...).
HARD_STATUSES = ("5.1.1", "5.1.10", "5.1.2", "5.1.3", "5.1.6", "5.4.4")

# RFC 3463 status codes, when the text said nothing decisive. Prefixes, longest first wins.
STATUS_RULES: list[tuple[str, str]] = [
    # Mailbox full / message too big / mailbox disabled: transient by the RFC's own words.
    ("5.2.2", SOFT),
    ("5.2.3", SOFT),
    ("5.2.1", SOFT),
    # The address or its domain is dead.
    ("5.1.1", HARD),
    ("5.1.10", HARD),
    ("5.1.2", HARD),
    ("5.1.3", HARD),
    ("5.1.6", HARD),
    ("5.4.4", HARD),
    # Problems with the sender's own address: the sender is refused.
    ("5.1.7", SENDER_SIDE),
    ("5.1.8", SENDER_SIDE),
    # Protocol, content and security/policy: about the sender or the message.
    ("5.5.", SENDER_SIDE),
    ("5.6.", SENDER_SIDE),
    ("5.7.", SENDER_SIDE),
    # Everything else permanent but unspecific (network, system, 5.0.0): do not kill the address.
    ("5.", SOFT),
    # Persistent transient failures (RFC 3463 "4.x.x"): temporary.
    ("4.7.", SENDER_SIDE),
    ("4.", SOFT),
    ("2.", NOT_A_FAILURE),
]

# SMTP reply codes when there is neither status nor wording. Only 551 ("user not local",
# RFC 5321) speaks of the recipient alone: servers answer 550 for policy refusals as often as
# for unknown mailboxes, and 553 for relaying denied and bad sender syntax.
REPLY_RULES: list[tuple[str, str]] = [
    ("551", HARD),
    ("552", SOFT),
    ("5", SOFT),
    ("4", SOFT),
    ("2", NOT_A_FAILURE),
]


def match_text(text: str) -> str | None:
    """The class of the first TEXT_RULES row whose pattern occurs in text, if any."""
    for pattern, klass in TEXT_RULES:
        if pattern.search(text or ""):
            return klass
    return None
