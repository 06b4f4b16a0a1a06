"""What the demo network holds: its people, who follows whom, and a script of posts, replies,
echoes, upvotes and a report, in the order they are made. Pure data; app.demo.builder makes it.

Posts are named by a key, so later steps (replies, echoes, upvotes, the report) point at them
and a second run knows which it made already.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from freehold.app.demo.images import RGB

ADMIN = "demo_admin"
# lab and development data only: printed by `freehold up` and `python -m freehold.app.dev`
PASSWORD = "freehold-demo"


@dataclass(frozen=True)
class Person:
    username: str
    display_name: str
    bio: str
    color: RGB  # avatar ground


PEOPLE: list[Person] = [
    Person(ADMIN, "Demo Admin", "Runs this Freehold server. Admin and juror.", (29, 78, 137)),
    Person("alice", "Alice Moreau", "Runs the community garden. Photos of things that grow.",
           (46, 125, 50)),
    Person("bob", "Bob Okafor", "Sysadmin. Owns his servers, and his coffee mug.",
           (93, 64, 55)),
    Person("carol", "Carol Nguyen", "City council notes, local news, the odd hike.",
           (123, 31, 162)),
    Person("dave", "Dave Lindqvist", "Cyclist. Maps. Bad puns.", (0, 105, 92)),
    Person("erin", "Erin Walsh", "Baker at the corner shop. Sourdough evangelist.",
           (191, 54, 12)),
    Person("frank", "Frank Adeyemi", "Volunteer juror. Reads the rules so you don't have to.",
           (69, 90, 100)),
    Person("grace", "Grace Kim", "Photographer: mountains, rivers, light.", (173, 20, 87)),
    Person("heidi", "Heidi Fischer", "Teaches physics. Asks why.", (40, 53, 147)),
    Person("quick_deals", "Quick Deals", "Best prices!!!", (158, 157, 36)),
]
USERNAMES = [p.username for p in PEOPLE]

# (follower, followee); the admin follows everyone but the spammer
FOLLOWS: list[tuple[str, str]] = (
    [(ADMIN, p.username) for p in PEOPLE if p.username not in (ADMIN, "quick_deals")]
    + [("alice", "bob"), ("alice", "grace"), ("alice", "erin"), ("alice", ADMIN),
       ("bob", "alice"), ("bob", "heidi"), ("bob", "dave"), ("bob", ADMIN),
       ("carol", "alice"), ("carol", "frank"), ("carol", ADMIN),
       ("dave", "grace"), ("dave", "bob"), ("dave", "carol"),
       ("erin", "alice"), ("erin", "carol"), ("erin", ADMIN),
       ("frank", "carol"), ("frank", "heidi"), ("frank", ADMIN),
       ("grace", "dave"), ("grace", "alice"), ("grace", "heidi"),
       ("heidi", "bob"), ("heidi", "grace"), ("heidi", ADMIN)])


@dataclass(frozen=True)
class Post:
    key: str
    by: str
    body: str = ""
    image: str | None = None   # a scene of app.demo.images.SCENES
    reply_to: str | None = None
    echo_of: str | None = None
    upvoted_by: list[str] = field(default_factory=list)


POSTS: list[Post] = [
    Post("welcome", "bob", f"Welcome to our own little corner of the internet, @{ADMIN}! "
         "Every server here is ours. #freehold #selfhosting", upvoted_by=["alice", "carol",
                                                                           "heidi", ADMIN]),
    Post("dawn", "grace", "Up at five for this. Worth it. #photography #mountains",
         image="dawn", upvoted_by=["alice", "dave", "heidi", ADMIN]),
    Post("garden", "alice", "The community garden's first harvest day is Saturday. Bring a "
         "basket, leave with tomatoes. #gardening", upvoted_by=["erin", "carol"]),
    Post("garden-re", "erin", "@alice I'll bring bread for everyone who helps weed. #baking",
         reply_to="garden", upvoted_by=["alice"]),
    Post("garden-re2", "alice", "@erin deal! That's the best offer we've had all year.",
         reply_to="garden-re"),
    Post("failover", "bob", "Pulled the plug on the database primary during lunch. The "
         "standby took over in 9 seconds and nobody noticed. #ops #freehold",
         upvoted_by=["heidi", "dave", ADMIN]),
    Post("failover-re", "heidi", "@bob 9 seconds? What decides how long it waits before "
         "giving up on the old primary?", reply_to="failover"),
    Post("failover-re2", "bob", "@heidi the leader lease in etcd: 30 s by default, we run it "
         "shorter. Happy to show you the dashboards.", reply_to="failover-re"),
    Post("lake", "grace", "Still water, no wind, nobody else around. #photography",
         image="lake", upvoted_by=["bob", "frank"]),
    Post("lake-echo", "dave", echo_of="lake"),
    Post("council", "carol", "City council tonight: the bike lanes on Main Street are on the "
         "agenda. 7 pm, room 2. #localnews #cycling", upvoted_by=["dave", "frank"]),
    Post("council-echo", "dave", "Cyclists, show up! I'll be the one with the helmet hair. "
         "#cycling", echo_of="council", upvoted_by=["carol"]),
    Post("sourdough", "erin", "Day 3 of the new starter. It smells like apples and ambition. "
         "#baking", upvoted_by=["alice", "grace"]),
    Post("forest", "dave", "Forty kilometres of gravel and one very confused deer. "
         "#cycling #outdoors", image="forest", upvoted_by=["grace", ADMIN]),
    Post("forest-re", "grace", "@dave that light through the trees! Which trail was it?",
         reply_to="forest"),
    Post("physics", "heidi", "Today's class question: why is the sky blue but the sunset "
         "red? Best answer from a 14-year-old: 'the sky runs out of blue'. #physics",
         upvoted_by=["bob", "carol", "erin", ADMIN]),
    Post("physics-echo", "alice", echo_of="physics"),
    Post("jury", "frank", "Reminder: anyone can report a post, and volunteer jurors decide. "
         f"Ask @{ADMIN} if you'd like to help. #moderation", upvoted_by=["carol"]),
    Post("dusk", "grace", "Last light over the ridge. #photography", image="dusk",
         upvoted_by=["heidi", "erin"]),
    Post("dusk-echo", "heidi", "This is what Rayleigh scattering looks like. Homework for "
         "tomorrow: explain this photo. #physics", echo_of="dusk", upvoted_by=["grace"]),
    Post("field", "alice", "The sunflowers came up after all. #gardening", image="field",
         upvoted_by=["grace", "bob", ADMIN]),
    Post("spam", "quick_deals", "GET 10,000 FOLLOWERS TODAY!!! Cheap, fast, guaranteed. DM "
         "for prices!!! #freehold #followers"),
    Post("hello", "carol", f"Hello @{ADMIN}, thanks for setting this up. Is there a guide "
         "for new people?", upvoted_by=["frank"]),
    Post("morning", "bob", "Coffee, then the weekly restore drill: backups you never "
         "restored are just hopes. #ops", upvoted_by=["heidi"]),
]

# (key, reporter, post key, reason, note): waiting in the jury queue for the admin
REPORTS: list[tuple[str, str, str, str, str]] = [
    ("spam-alice", "alice", "spam", "spam", "Selling followers, posted in every hashtag."),
    ("spam-heidi", "heidi", "spam", "spam", "Same message sent to me in a DM."),
]
