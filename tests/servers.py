"""Local stand-ins for the outside world, served over real HTTP on 127.0.0.1.

- ``UpstreamServer`` plays the newsletter sites: feeds and article pages with real headers
  (ETag / Last-Modified and 304, gzip, slow answers, any status).
- ``LibreTranslateServer`` speaks the LibreTranslate API with a deterministic, dictionary-based
  English -> French "translation", so deep-translator and real HTTP stay in the path while the
  output stays predictable (placeholders, numbers and names pass through; line count is kept).

Standard library only: the benchmarks in bench/ import this module too.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer, TCPServer
from types import TracebackType
from typing import Any, ClassVar, Literal, NamedTuple, Self
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def config_toml(
    libre_url: str,
    feeds: Sequence[Mapping[str, str]] = (),
    *,
    database_url: str = "sqlite:///aggregator.db",
    port: int | None = None,
    fetch: Mapping[str, int | str] | None = None,
    extra: str = "",
) -> str:
    """The text of a config.toml pointing the aggregator at these servers: translation by
    ``libre_url`` (a LibreTranslateServer), private networks allowed (all is on loopback),
    ``fetch`` keys added to [fetch], the web server on ``port`` of 127.0.0.1 when given.
    ``feeds`` are mappings of feed keys (``url``, ``name``, ``interval``…). ``extra`` is
    TOML put as is before the feeds: its bare keys, if any, go to ``[translation.libre]``."""
    lines = ["[database]", f"url = {_toml_string(database_url)}", ""]
    if port is not None:
        lines += [
            "[server]",
            f'host = "{LOOPBACK}"',
            f"port = {port}",
            f'base_url = "http://{LOOPBACK}:{port}"',
            "",
        ]
    lines += [
        "[fetch]",
        "allow_private_networks = true",
        *(f"{key} = {_toml_string(value)}" for key, value in (fetch or {}).items()),
        "",
        "[translation]",
        'engine = "libre"',
        'target_language = "fr"',
        "",
        "[translation.libre]",
        f"url = {_toml_string(libre_url)}",
        'api_key = "test"',
    ]
    if extra:
        lines += [extra]
    for feed in feeds:
        lines += ["", "[[feeds]]"]
        lines += [f"{key} = {_toml_string(value)}" for key, value in feed.items()]
    return "\n".join(lines) + "\n"


def _toml_string(value: str | int) -> str:
    # A JSON string is a valid TOML basic string for everything written here.
    return json.dumps(value, ensure_ascii=False)


class _LoopbackHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that can be closed while clients still hold connections open."""

    daemon_threads = True
    # The default joins every handler thread on close; a handler parked in a keep-alive read
    # or a deliberate hang would then block shutdown.
    block_on_close = False

    def __init__(self, handler_class: type[BaseHTTPRequestHandler]) -> None:
        self._open_connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.closing = threading.Event()
        super().__init__((LOOPBACK, 0), handler_class)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall
        # for seconds on an offline machine; the name is never used here.
        TCPServer.server_bind(self)
        self.server_name = LOOPBACK
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._open_connections.discard(request)
        super().shutdown_request(request)

    def drop_open_connections(self) -> None:
        """Wake every handler blocked on a read by shutting its socket down."""
        with self._connections_lock:
            connections = list(self._open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up (timeout, closed pool) is normal here; anything else is a bug
        # in a test server and must stay visible.
        error = sys.exc_info()[1]
        if self.closing.is_set() or isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Bounds how long an idle keep-alive connection keeps a handler thread alive.
    timeout = 30
    server_version = "aggregator-tests/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line."""

    @property
    def closing(self) -> threading.Event:
        server: BaseServer = self.server
        assert isinstance(server, _LoopbackHTTPServer)
        return server.closing

    def send_body(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str],
        *,
        include_body: bool = True,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if include_body:
            self.wfile.write(body)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_body(status, body, {"Content-Type": "application/json", **(headers or {})})

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


class LocalServer:
    """Lifecycle shared by the test servers: bound at construction, served from a daemon thread.

    Use as a context manager, or call ``start()`` and ``close()``.
    """

    def __init__(self, handler_class: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = _LoopbackHTTPServer(handler_class)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str = "/") -> str:
        if path and not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    @property
    def closing(self) -> threading.Event:
        return self._httpd.closing

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{type(self).__name__}:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd.closing.is_set():
            return
        self._httpd.closing.set()
        self._on_close()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.drop_open_connections()
        self._httpd.server_close()

    def _on_close(self) -> None:
        """Hook for subclasses: release handlers that wait on something other than a read."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Upstream sites


class RecordedRequest(NamedTuple):
    method: str
    path: str
    """The request target as sent, query string included."""
    headers: dict[str, str]
    """Header names lower-cased."""


@dataclass(frozen=True)
class Route:
    body: bytes
    status: int
    headers: dict[str, str]
    etag: str | None
    last_modified: str | None
    delay: float
    gzip: bool

    def is_not_modified(self, request_headers: dict[str, str]) -> bool:
        """RFC 9110 13.2.2: If-None-Match, when sent, decides alone; else If-Modified-Since."""
        if_none_match = request_headers.get("if-none-match")
        if if_none_match is not None:
            if self.etag is None:
                return False
            candidates = [tag.strip() for tag in if_none_match.split(",")]
            return "*" in candidates or any(
                _opaque_tag(tag) == _opaque_tag(self.etag) for tag in candidates
            )
        if_modified_since = request_headers.get("if-modified-since")
        if if_modified_since is None or self.last_modified is None:
            return False
        try:
            return parsedate_to_datetime(self.last_modified) <= parsedate_to_datetime(
                if_modified_since
            )
        except (TypeError, ValueError):
            return False


def _opaque_tag(tag: str) -> str:
    """Weak comparison (RFC 9110 8.8.3.2): W/"x" matches "x"."""
    return tag.removeprefix("W/")


def _quoted_etag(etag: str) -> str:
    return etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'


class _UpstreamHandler(_QuietHandler):
    upstream: ClassVar[UpstreamServer]

    def do_GET(self) -> None:
        self._answer(include_body=True)

    def do_HEAD(self) -> None:
        self._answer(include_body=False)

    def _answer(self, *, include_body: bool) -> None:
        request_headers = {name.lower(): value for name, value in self.headers.items()}
        self.upstream._record(RecordedRequest(self.command, self.path, request_headers))
        route = self.upstream._route_for(self.path, request_headers)
        if route is None:
            body = f"no route for {self.path}\n".encode()
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            self.send_body(404, body, headers, include_body=include_body)
            return
        if route.delay and self.closing.wait(route.delay):
            self.close_connection = True
            return
        validators = {}
        if route.etag is not None:
            validators["ETag"] = route.etag
        if route.last_modified is not None:
            validators["Last-Modified"] = route.last_modified
        if route.is_not_modified(request_headers):
            self.send_body(304, b"", {**route.headers, **validators}, include_body=False)
            return
        headers = {**route.headers, **validators}
        if route.gzip:
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        self.send_body(route.status, route.body, headers, include_body=include_body)


class UpstreamServer(LocalServer):
    """Serves registered routes; records every request; unknown paths answer 404.

    Example::

        with UpstreamServer() as upstream:
            feed_url = upstream.add("/rss/", feed_bytes, etag="v1")
            ...  # fetch feed_url twice; upstream.hits("/rss/") == 2, the second a 304
    """

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        # Per path: a route answered instead to a request carrying this header and value.
        self._variants: dict[str, tuple[str, str, Route]] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        handler = type("UpstreamHandler", (_UpstreamHandler,), {"upstream": self})
        super().__init__(handler)

    def add(self, path: str, body: bytes | str, **route: Any) -> str:
        """Register (or replace) a route; returns its full URL.

        ``path`` may carry a query string, which then must match exactly; otherwise any query
        is ignored. The keywords are ``route_of``'s.
        """
        built = route_of(body, **route)
        with self._lock:
            self._routes[path] = built
        return self.url(path)

    def add_for_header(
        self, path: str, header: str, value: str, body: bytes | str, **route: Any
    ) -> str:
        """Answer ``body`` (with ``add``'s keywords) at ``path`` to a request whose ``header``
        is exactly ``value`` (a members' cookie); other requests get the route ``add`` gave.
        Returns the path's full URL."""
        variant = route_of(body, **route)
        with self._lock:
            self._variants[path] = (header.lower(), value, variant)
        return self.url(path)

    def remove(self, path: str) -> None:
        """Forget a route: it answers 404 from now on."""
        with self._lock:
            self._routes.pop(path, None)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def hits(self, path: str) -> int:
        """Requests for ``path``; a path without '?' counts requests whatever their query."""
        with self._lock:
            recorded = [request.path for request in self._requests]
        if "?" in path:
            return sum(1 for target in recorded if target == path)
        return sum(1 for target in recorded if urlsplit(target).path == path)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _route_for(self, target: str, request_headers: dict[str, str]) -> Route | None:
        with self._lock:
            variant = self._variants.get(target) or self._variants.get(urlsplit(target).path)
            if variant and request_headers.get(variant[0]) == variant[1]:
                return variant[2]
            return self._routes.get(target) or self._routes.get(urlsplit(target).path)


def route_of(
    body: bytes | str,
    *,
    status: int = 200,
    content_type: str = "application/rss+xml; charset=utf-8",
    headers: dict[str, str] | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    delay: float = 0.0,
    gzip: bool = False,
) -> Route:
    """What an UpstreamServer answers at a path. ``etag`` is quoted if given bare. With
    ``etag`` / ``last_modified`` set, matching If-None-Match / If-Modified-Since get a 304.
    ``delay`` waits that many seconds before answering (cut short by close()).
    ``gzip=True`` always sends the body gzip-compressed with Content-Encoding: gzip, whatever
    the client's Accept-Encoding."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return Route(
        body=_gzip_bytes(raw) if gzip else raw,
        status=status,
        headers={"Content-Type": content_type, **(headers or {})},
        etag=_quoted_etag(etag) if etag is not None else None,
        last_modified=last_modified,
        delay=delay,
        gzip=gzip,
    )


def _gzip_bytes(data: bytes) -> bytes:
    # mtime=0 keeps the compressed bytes identical from run to run.
    return gzip.compress(data, mtime=0)


# --------------------------------------------------------------------------------------------
# Translation: a deterministic English -> French dictionary

# "english=french" pairs separated by commas. Function words first (they are what a language
# identifier relies on), then the verbs, nouns and adjectives common in tech and news
# newsletters. Keys are lower case; apostrophes are straight.
_ENGLISH_TO_FRENCH_PAIRS = """
the=le, a=un, an=un, this=ce, that=que, these=ces, those=ceux, there=là, here=ici,
it=il, its=son, it's=c'est, itself=lui-même, i=je, i'm=je suis, i'd=je voudrais, i've=j'ai,
i'll=je vais, me=moi, my=mon, myself=moi-même, you=vous, your=votre, you're=vous êtes,
he=il, him=lui, his=son, himself=lui-même, she=elle, her=sa, we=nous, we're=nous sommes,
us=nous, our=notre, they=ils, they're=ils sont, they've=ils ont, them=eux, their=leur,
who=qui, whom=qui, whose=dont, which=qui, what=ce que, when=quand, where=où, why=pourquoi,
how=comment, whether=si, and=et, or=ou, but=mais, nor=ni, neither=ni, either=soit, if=si,
so=donc, because=parce que, than=que, as=comme, while=tandis que, although=bien que,
though=pourtant, unless=sauf si, since=depuis, until=jusqu'à, of=de, to=à, in=dans, on=sur,
for=pour, with=avec, at=à, by=par, from=de, about=sur, into=dans, onto=sur, over=sur,
after=après, before=avant, between=entre, through=par, under=sous, without=sans,
within=dans, against=contre, during=pendant, across=à travers, around=autour de,
behind=derrière, toward=vers, towards=vers, among=parmi, inside=dans, outside=dehors,
per=par, not=pas, no=non, yes=oui, don't=ne pas, doesn't=ne pas, didn't=n'a pas,
isn't=n'est pas, aren't=ne sont pas, can't=ne peut pas, cannot=ne peut pas, cant=ne peut pas,
won't=ne va pas, wasn't=n'était pas, that's=c'est, there's=il y a, let's=allons,
what's=qu'est-ce que, it'll=ce sera, is=est, are=sont, was=était, were=étaient, be=être,
been=été, being=étant, am=suis, has=a, have=ont, had=avait, having=ayant, do=faire,
does=fait, did=a fait, done=fait, will=va, would=serait, can=peut, could=pourrait,
should=devrait, may=peut, might=pourrait, must=doit, also=aussi, only=seulement, just=juste,
more=plus, most=la plupart, less=moins, least=moins, very=très, too=trop, all=tous,
some=certains, any=tout, each=chaque, every=chaque, other=autre, others=autres,
another=un autre, such=tel, same=même, many=beaucoup, much=beaucoup, few=peu,
several=plusieurs, both=les deux, own=propre, now=maintenant, then=alors, still=encore,
already=déjà, even=même, again=encore, never=jamais, always=toujours, often=souvent,
sometimes=parfois, usually=habituellement, instead=plutôt, however=cependant, well=bien,
simply=simplement, actually=en fait, really=vraiment, almost=presque, perhaps=peut-être,
maybe=peut-être, once=une fois, ago=il y a, today=aujourd'hui, yesterday=hier,
tomorrow=demain, soon=bientôt, later=plus tard, mostly=surtout, especially=surtout,
directly=directement, easily=facilement, completely=complètement, fully=entièrement,
definitely=certainement, roughly=environ, nevertheless=néanmoins,
meanwhile=pendant ce temps, thus=ainsi, therefore=donc, indeed=en effet, finally=enfin,
together=ensemble, away=loin, forward=en avant, differently=autrement,
personally=personnellement, globally=mondialement, traditionally=traditionnellement,
something=quelque chose, anything=n'importe quoi, nothing=rien, everything=tout,
someone=quelqu'un, anyone=quiconque, everyone=tout le monde, nobody=personne, one=un,
two=deux, three=trois, four=quatre, five=cinq, ten=dix, hundred=cent, thousand=mille,
thousands=milliers, million=million, millions=millions, billion=milliards,
billions=milliards, first=premier, second=deuxième, third=troisième, last=dernier,
next=prochain, half=moitié, say=dire, says=dit, said=a dit, make=faire, makes=rend,
made=fait, making=faisant, get=obtenir, gets=obtient, got=a obtenu, go=aller, goes=va,
went=est passé, going=allant, know=savoir, knew=savions, think=penser, take=prendre,
taking=prenant, took=a pris, see=voir, come=venir, comes=vient, want=vouloir, wants=veut,
use=utiliser, used=utilisé, using=utilisant, uses=utilise, find=trouver, found=trouvé,
give=donner, giving=donnant, given=donné, tell=dire, work=travail, works=fonctionne,
working=travaillant, worked=travaillé, call=appeler, called=appelé, try=essayer,
ask=demander, asked=a demandé, need=besoin, needs=a besoin, feel=sentir, become=devenir,
leave=laisser, put=mettre, mean=signifier, means=signifie, keep=garder, let=laisser,
begin=commencer, began=a commencé, seem=sembler, seems=semble, help=aider, show=montrer,
hear=entendre, heard=entendu, play=jouer, run=exécuter, running=exécutant, move=déplacer,
live=vivre, believe=croire, bring=apporter, happen=arriver, happens=arrive,
happened=est arrivé, write=écrire, wrote=a écrit, written=écrit, read=lire, reading=lecture,
learn=apprendre, learned=appris, build=construire, building=construisant, buy=acheter,
buying=achat, sell=vendre, pay=payer, paid=payant, spend=dépenser, offer=offre,
offered=a offert, offers=offres, stop=arrêter, stops=arrête, change=changer, create=créer,
created=créé, support=soutenir, supports=soutient, supported=soutenu,
supporting=soutenant, share=partager, sharing=partage, join=rejoindre, joined=a rejoint,
choose=choisir, chose=a choisi, turn=transformer, turned=a activé, return=revenir,
released=publié, release=version, releasing=publier, compare=comparer, compared=comparé,
decide=décider, decides=décide, love=adore, thank=remercier, thanks=merci, agree=accepter,
look=regarder, looking=regardant, watch=regarder, watching=suivre, wait=attendre,
hold=tenir, held=tenu, reach=portée, grow=grandir, raise=augmenter, raises=augmente,
raising=augmenter, fight=combattre, fighting=se battent, argued=soutenu,
attacked=attaqué, ordered=ordonné, disagree=ne sont pas d'accord, apply=appliquer,
install=installer, consider=considérer, considers=juge, include=inclure, includes=inclut,
require=exiger, requires=exige, allow=permettre, allows=permet, publish=publier,
published=publié, subscribe=abonner, enjoyed=apprécié, forwarded=transféré, led=dirigé,
controls=contrôle, complicates=complique, submitted=soumis, ignores=ignore,
time=temps, year=année, years=ans, day=jour, days=jours, week=semaine,
weekly=hebdomadaire, month=mois, people=personnes, person=personne, way=façon, man=homme,
men=hommes, woman=femme, women=femmes, thing=chose, things=choses, world=monde, life=vie,
company=entreprise, companies=entreprises, part=partie, place=lieu, places=lieux, case=cas,
cases=affaires, number=nombre, numbers=chiffres, group=groupe, groups=groupes,
problem=problème, fact=fait, question=question, questions=questions,
government=gouvernement, administration=administration, court=tribunal,
courts=tribunaux, judge=juge, judges=juges, law=loi, lawsuit=procès, lawyer=avocat,
power=pouvoir, money=argent, business=entreprise, technology=technologie, media=médias,
news=actualités, newsletter=lettre, newsletters=lettres, letter=lettre, article=article,
post=billet, page=page, blog=blogue, software=logiciel, code=code, data=données,
research=recherche, engineer=ingénieur, engineers=ingénieurs, system=système,
systems=systèmes, computer=ordinateur, friend=ami, friends=amis, statement=déclaration,
board=conseil, plan=projet, plans=projets, promise=promesse, lack=manque, view=avis,
cost=coût, costs=coûts, price=prix, control=contrôle, order=décret, side=côté, form=forme,
point=raison, speed=vitesse, speeds=vitesses, file=fichier, files=fichiers,
library=bibliothèque, libraries=bibliothèques, user=utilisateur, users=utilisateurs,
programmer=programmeur, developer=développeur, developers=développeurs, version=version,
tree=arbre, network=réseau, website=site web, reader=lecteur, readers=lecteurs,
project=projet, community=communauté, communities=communautés, speaker=intervenant,
speakers=intervenants, training=formation, workshop=atelier, workshops=ateliers,
event=événement, events=événements, conference=conférence, conferences=conférences,
idea=idée, ideas=idées, volunteer=bénévole, volunteers=bénévoles, background=parcours,
experience=expérience, country=pays, countries=pays, state=État, states=États,
department=ministère, departments=ministères, agencies=agences, payments=paiements,
bid=offre, investors=investisseurs, nonprofit=association, organization=organisation,
organizations=organisations, assets=actifs, value=valeur, values=évalue,
safety=sécurité, direction=direction, transparency=transparence, openness=ouverture,
principles=principes, engine=moteur, advances=progrès, restructuring=restructuration,
charity=association caritative, subsidiary=filiale, compliance=obéissance,
oversight=contrôle, members=membres, member=membre, subscribers=abonnés,
subscriptions=abonnements, tier=formule, announcement=annonce, house=maison,
leadership=direction, goal=objectif, stage=scène, path=chemin, partners=partenaires,
schedule=programme, meetings=réunions, hour=heure, health=santé, content=contenu,
creators=créateurs, reference=référence, difference=différence, parsing=analyse,
parser=analyseur, benchmarks=mesures, processor=processeur, disk=disque,
new=nouveau, good=bon, great=formidable, little=petit, old=vieux, big=grand, high=haut,
higher=plus élevées, low=bas, lower=plus bas, different=différents, small=petit,
large=grand, early=tôt, young=jeunes, important=important, public=public, private=privé,
bad=mauvais, able=capable, free=gratuit, open=ouvert, federal=fédéral,
political=politique, interesting=intéressant, better=meilleur, best=meilleur,
fast=rapide, faster=plus rapide, slow=lent, slower=plus lent, easy=facile,
easier=plus facile, hard=difficile, difficult=difficile, real=réel, true=vrai,
full=complet, common=courant, possible=possible, necessary=nécessaire,
available=disponible, latest=dernière, obvious=évident, fair=juste, joint=commune,
wasteful=inutiles, executive=exécutif, relevant=pertinent, impressive=impressionnant,
positive=positif, amazing=incroyable, incredible=incroyable, diverse=diversifiée,
sure=sûr, whole=entier, main=principal, clear=clair, likely=probable, modern=moderne,
welcome=bienvenue, please=s'il vous plaît, like=comme,
breaking=briser, down=bas, barriers=barrières, speaking=parlant
"""


def _parse_pairs(pairs: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for pair in pairs.split(","):
        english, _, french = pair.strip().partition("=")
        if english:
            table[english] = french
    return table


ENGLISH_TO_FRENCH: dict[str, str] = _parse_pairs(_ENGLISH_TO_FRENCH_PAIRS)

# A smaller English -> Spanish table, for feeds translated into two languages: function
# words first, then the words of the tests' generated articles (``tests/test_languages.py``).
_ENGLISH_TO_SPANISH_PAIRS = """
the=el, a=un, an=un, this=este, that=que, these=estos, those=esos, there=allí, here=aquí,
it=ello, its=su, i=yo, me=mí, my=mi, you=usted, your=su, he=él, him=él, his=su, she=ella,
her=su, we=nosotros, us=nos, our=nuestro, they=ellos, them=ellos, their=su, who=quien,
which=cual, what=qué, when=cuando, where=donde, why=por qué, how=cómo, and=y, or=o,
but=pero, if=si, so=así, because=porque, than=que, as=como, while=mientras, of=de, to=a,
in=en, on=sobre, at=en, for=para, with=con, without=sin, from=desde, by=por, about=sobre,
into=en, before=antes de, after=después de, back=de vuelta, again=otra vez, every=cada,
all=todos, some=algunos, many=muchos, much=mucho, more=más, most=la mayoría, lot=mucho,
no=no, not=no, is=es, are=son, was=era, were=eran, be=ser, been=sido, has=tiene,
have=tienen, had=tenía, do=hacer, does=hace, did=hizo, will=va a, would=haría, can=puede,
could=podría, should=debería, may=puede, new=nuevo, old=viejo, good=bueno, happy=felices,
people=la gente, town=pueblo, harbour=puerto, bridge=puente, market=mercado, school=escuela,
changed=cambió, walked=caminaba, talked=hablaba, went=volvía, came=volvía, home=a casa,
morning=mañana, evening=tarde, weather=tiempo, boats=barcos, price=precio, bread=pan,
rain=lluvia, issue=número, paragraph=párrafo, weekly=semanal, letter=carta, news=noticias,
article=artículo, world=mundo, day=día, week=semana, year=año, time=tiempo, city=ciudad
"""
ENGLISH_TO_SPANISH: dict[str, str] = _parse_pairs(_ENGLISH_TO_SPANISH_PAIRS)
DICTIONARIES = {"fr": ENGLISH_TO_FRENCH, "es": ENGLISH_TO_SPANISH}

# Alternatives tried in order at each position; only the last one is ever translated.
_TOKEN = re.compile(
    r"(?P<markup><[^<>\n]*>)"  # tags and placeholders such as <x1>
    r"|(?P<url>\b(?:https?://|www\.)\S+)"
    r"|(?P<identifier>[\w@]+(?:[./_@][\w@]+)+)"  # json.loads, nlohmann/json, a@b.c
    r"|(?P<word>\w+(?:['’]\w+)*)"
)


def _translate_word(
    word: str, unknown: Callable[[str], str], table: dict[str, str] = ENGLISH_TO_FRENCH
) -> str:
    if len(word) > 1 and word.isupper():
        return word  # an acronym: "US" is not "nous", "IT" is not "il"
    if any(character.isdigit() or character == "_" for character in word):
        return word
    french = table.get(word.lower().replace("’", "'"))
    if french is None:
        return unknown(word)
    if word[0].isupper():
        return french[0].upper() + french[1:]
    return french


def dictionary_translate(
    text: str, unknown: Callable[[str], str] = lambda word: word, target: str = "fr"
) -> str:
    """English -> French (or the ``target`` of ``DICTIONARIES``), word by word, changing
    nothing but the words found in the table.

    Whitespace, punctuation, newlines, markup, URLs, identifiers, numbers and unknown words
    (names, placeholders such as ``⟦1⟧``, ``{1}``, ``[[1]]``, ``<x1>``) come out as they went in;
    ``unknown`` may say what a word not in the table becomes instead.
    """

    def token(match: re.Match[str]) -> str:
        if match.lastgroup == "word":
            return _translate_word(match.group(), unknown, DICTIONARIES[target])
        return match.group()

    return "\n".join(_TOKEN.sub(token, line) for line in text.split("\n"))


# --------------------------------------------------------------------------------------------
# LibreTranslate

TranslatorMode = Literal["translate", "empty", "drop_lines", "drop_placeholders", "null"]
_MODES: tuple[TranslatorMode, ...] = (
    "translate",
    "empty",
    "drop_lines",
    "drop_placeholders",
    "null",
)
# What engines that lose inline markup do: the text stays, the ``[[n]]`` markers go.
_PLACEHOLDER_MARK = re.compile(r"\[\[\s*/?\s*\d+\s*\]\]")

LIBRE_LANGUAGES: list[dict[str, Any]] = [
    {"code": "en", "name": "English", "targets": ["fr", "es"]},
    {"code": "fr", "name": "French", "targets": []},
    {"code": "es", "name": "Spanish", "targets": []},
]


class _RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _ScheduledFailure:
    status: int
    retry_after: str | None


class _LibreTranslateHandler(_QuietHandler):
    translator: ClassVar[LibreTranslateServer]

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/languages":
            self.send_json(200, LIBRE_LANGUAGES)
        else:
            self.send_json(404, {"error": "Not Found"})

    def do_POST(self) -> None:
        body = self.read_body()
        if urlsplit(self.path).path != "/translate":
            self.send_json(404, {"error": "Not Found"})
            return
        self.translator._record_query(urlsplit(self.path).query)
        try:
            fields = self._fields(body)
        except _RequestError as error:
            self.send_json(error.status, {"error": str(error)})
            return
        texts = fields.get("q")
        self.translator._count(texts, fields.get("target"))
        if not self.translator._wait_while_hanging():
            self.close_connection = True  # closing: the client sees the connection drop
            return
        if self.translator.latency and self.closing.wait(self.translator.latency):
            self.close_connection = True
            return
        failure = self.translator._take_scheduled_failure()
        if failure is not None:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            self.send_json(failure.status, {"error": "Simulated failure"}, headers)
            return
        try:
            self.send_json(200, self.translator._respond(fields))
        except _RequestError as error:
            self.send_json(error.status, {"error": str(error)})

    def _fields(self, body: bytes) -> dict[str, Any]:
        """Query string, then the body (form or JSON) on top: LibreTranslate accepts all three."""
        fields: dict[str, Any] = _single_values(parse_qs(urlsplit(self.path).query))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not body:
            return fields
        if content_type == "application/json":
            try:
                decoded = json.loads(body)
            except ValueError as error:
                raise _RequestError(400, f"Invalid JSON body: {error}") from None
            if not isinstance(decoded, dict):
                raise _RequestError(400, "Invalid request: the JSON body must be an object")
            fields.update(decoded)
        elif content_type == "application/x-www-form-urlencoded":
            fields.update(_single_values(parse_qs(body.decode("utf-8"), keep_blank_values=True)))
        return fields


def _single_values(parsed: dict[str, list[str]]) -> dict[str, Any]:
    """parse_qs gives lists; a repeated key (q=a&q=b) stays a list, as a batch."""
    return {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}


class LibreTranslateServer(LocalServer):
    """A LibreTranslate API (``POST /translate``, ``GET /languages``) with a fake translation.

    Point deep-translator at it with
    ``LibreTranslator(source="en", target="fr", api_key="test", custom_url=server.url("/"))``.

    Counters (thread-safe): ``requests`` counts every ``/translate`` call received, failed or
    not; ``characters`` sums ``len(q)`` over them; ``texts`` lists every ``q`` string received;
    ``query_fields`` lists the names of the fields that came in a query string rather than
    the body (the key or the text there ends up in access logs: ``leaked_in_query()``).

    Failure modes, settable while running: ``fail_next(n, status, retry_after)``;
    ``hang = True`` (calls are received and counted but never answered until ``hang`` is reset
    or the server closes); ``mode = "empty"`` (answers ``""``); ``mode = "drop_lines"``
    (answers each text without its last line); ``mode = "drop_placeholders"`` (translates but
    removes every ``[[n]]`` / ``[[/n]]`` marker); ``mode = "null"`` (answers
    ``{"translatedText": null}``, which deep-translator returns as ``None``). ``latency``
    (seconds, also settable) delays every answer, as a remote service would.
    """

    def __init__(self, *, require_api_key: bool = False, latency: float = 0.0) -> None:
        self.require_api_key = require_api_key
        # Seconds every /translate call waits before answering, like a remote service.
        self.latency = latency
        self._lock = threading.Lock()
        self._hang_released = threading.Condition(self._lock)
        self._hang = False
        self._mode: TranslatorMode = "translate"
        self._requests = 0
        self._characters = 0
        self._texts: list[str] = []
        self._targets: list[str] = []  # each request's target language
        self._query_fields: list[str] = []
        self._scheduled_failures: deque[_ScheduledFailure | None] = deque()
        handler = type("LibreTranslateHandler", (_LibreTranslateHandler,), {"translator": self})
        super().__init__(handler)

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def characters(self) -> int:
        with self._lock:
            return self._characters

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return list(self._texts)

    @property
    def targets(self) -> list[str]:
        with self._lock:
            return list(self._targets)

    @property
    def query_fields(self) -> list[str]:
        with self._lock:
            return list(self._query_fields)

    def leaked_in_query(self) -> list[str]:
        """The secret or private fields (``api_key``, ``q``) that came in a query string."""
        return [name for name in self.query_fields if name in ("api_key", "q")]

    @property
    def mode(self) -> TranslatorMode:
        return self._mode

    @mode.setter
    def mode(self, mode: TranslatorMode) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self._mode = mode

    @property
    def hang(self) -> bool:
        return self._hang

    @hang.setter
    def hang(self, hang: bool) -> None:
        with self._hang_released:
            self._hang = hang
            self._hang_released.notify_all()

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: float | str | None = None,
        *,
        after: int = 0,
    ) -> None:
        """The next ``count`` /translate calls answer ``status`` (with Retry-After if given);
        with ``after``, that many calls are answered normally first."""
        header = None if retry_after is None else str(retry_after)
        with self._lock:
            self._scheduled_failures.extend([None] * after)
            self._scheduled_failures.extend([_ScheduledFailure(status, header)] * count)

    def _on_close(self) -> None:
        with self._hang_released:
            self._hang_released.notify_all()

    def _record_query(self, query: str) -> None:
        names = list(parse_qs(query, keep_blank_values=True))
        with self._lock:
            self._query_fields.extend(names)

    def _count(self, q: object, target: object = None) -> None:
        received = [q] if isinstance(q, str) else q if isinstance(q, list) else []
        strings = [text for text in received if isinstance(text, str)]
        with self._lock:
            self._targets.append(str(target))
            self._requests += 1
            self._characters += sum(len(text) for text in strings)
            self._texts.extend(strings)

    def _wait_while_hanging(self) -> bool:
        """False when the server closes while the call hangs."""
        with self._hang_released:
            self._hang_released.wait_for(lambda: not self._hang or self.closing.is_set())
        return not self.closing.is_set()

    def _take_scheduled_failure(self) -> _ScheduledFailure | None:
        with self._lock:
            return self._scheduled_failures.popleft() if self._scheduled_failures else None

    def _respond(self, fields: dict[str, Any]) -> dict[str, Any]:
        api_key = fields.get("api_key")
        if self.require_api_key and not (isinstance(api_key, str) and api_key.strip()):
            raise _RequestError(403, "Invalid API key")
        q = fields.get("q")
        if q is None or q == []:
            raise _RequestError(400, "Invalid request: missing q parameter")
        if not (isinstance(q, str) or (isinstance(q, list) and all(isinstance(t, str) for t in q))):
            raise _RequestError(400, "Invalid request: q must be a string or a list of strings")
        source = fields.get("source") or "auto"
        target = fields.get("target")
        if source not in ("auto", "en"):
            raise _RequestError(400, f"{source} is not supported")
        if target not in DICTIONARIES:
            raise _RequestError(400, f"{target} is not supported")
        translated: str | list[str] = (
            self._translate(q, target)
            if isinstance(q, str)
            else [self._translate(text, target) for text in q]
        )
        response: dict[str, Any] = {"translatedText": None if self._mode == "null" else translated}
        if source == "auto":
            detected = {"confidence": 90.0, "language": "en"}
            response["detectedLanguage"] = detected if isinstance(q, str) else [detected] * len(q)
        return response

    def _translate(self, text: str, target: str = "fr") -> str:
        if self._mode == "empty":
            return ""
        translated = dictionary_translate(text, target=target)
        if self._mode == "drop_lines":
            return "\n".join(translated.split("\n")[:-1])
        if self._mode == "drop_placeholders":
            return _PLACEHOLDER_MARK.sub("", translated)
        return translated
