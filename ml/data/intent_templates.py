"""Paraphrase templates, priors and slot vocabularies for the synthetic customer utterances.

Slots in braces are filled from the world: {product} (an item title), {brand}, {category},
{noun} (a product noun), {order} (an order number), {coupon}, {city}, {price}, {address},
{payment}. ``DRIFT_TEMPLATES`` are phrasings never used before ``drift.start_day``: they model
customers starting to talk differently (new slang, new channels) for the drift demo.

Some intents deliberately share vocabulary (get_refund / return_item / cancel_order all talk
about orders and money) so the classifier has real confusions to learn, while each intent keeps
its own key words.
"""

from __future__ import annotations

TEMPLATES: dict[str, tuple[str, ...]] = {
    "search_product": (
        "do you sell {noun}",
        "I'm looking for a {noun} from {brand}",
        "show me {category} under {price} dollars",
        "where can I find the {product}",
        "search for {brand} {noun}",
        "do you have any {noun} in stock for {category}",
        "I need a new {noun}, what do you have",
    ),
    "compare_price": (
        "is the {product} cheaper than other {noun} options",
        "compare prices of {brand} {noun} with similar ones",
        "which {noun} gives the best value for the money",
        "why is the {product} more expensive than before",
        "price difference between {brand} and other {category} brands",
        "is there a cheaper alternative to the {product}",
        "what's the lowest price you have for a {noun}",
    ),
    "track_order": (
        "where is my order {order}",
        "track my package {order}",
        "has order {order} shipped yet",
        "my {noun} hasn't arrived, can you check order {order}",
        "what's the delivery status of {order}",
        "when will my order {order} get to {city}",
        "the tracking for {order} hasn't updated in days",
    ),
    "cancel_order": (
        "cancel my order {order}",
        "I want to cancel the {product} I ordered",
        "please cancel order {order} before it ships",
        "I changed my mind, cancel the order for the {noun}",
        "how do I cancel an order I placed today",
        "stop my order {order}, I don't need it anymore",
        "can I still cancel {order} and get my money back",
    ),
    "return_item": (
        "I want to return the {product}",
        "how do I send back the {noun} I bought",
        "return label for order {order} please",
        "the {noun} doesn't fit, I'd like to return it",
        "can I return a {category} item after 30 days",
        "I need to return the {brand} {noun} from order {order}",
        "where do I drop off a return in {city}",
    ),
    "get_refund": (
        "I returned the {noun} but haven't got my refund",
        "when will I get my money back for order {order}",
        "refund my payment for the {product}",
        "I want a refund to my {payment}",
        "how long does a refund take after a return",
        "you charged me for {order} but I want a refund",
        "still waiting for the refund on {order}",
    ),
    "delivery_options": (
        "do you offer express shipping to {city}",
        "how much is next-day delivery",
        "can I pick up my {noun} in store in {city}",
        "what delivery options do you have",
        "do you ship {category} items internationally",
        "is there free shipping on orders over {price} dollars",
        "how fast can you deliver a {noun} to {city}",
    ),
    "payment_issue": (
        "my {payment} was declined",
        "payment failed when I tried to buy the {product}",
        "I was charged twice for order {order}",
        "why can't I pay with {payment}",
        "checkout keeps giving me a payment error",
        "the payment went through but order {order} shows unpaid",
        "my card got charged but I never received a confirmation",
    ),
    "apply_coupon": (
        "how do I use coupon {coupon}",
        "the code {coupon} isn't working",
        "can I apply {coupon} to the {product}",
        "where do I enter a discount code",
        "does {coupon} work on {category}",
        "I forgot to add my promo code {coupon} to order {order}",
        "is there a coupon for {brand} products",
    ),
    "product_availability": (
        "is the {product} in stock",
        "when will the {product} be available again",
        "do you have the {brand} {noun} in {city} stores",
        "is the {noun} from {brand} sold out",
        "notify me when the {product} is back in stock",
        "how many {noun} do you have left",
        "can I preorder the {product}",
    ),
    "change_shipping_address": (
        "change the delivery address for order {order} to {address}",
        "I moved, please ship {order} to {address}",
        "can I update my shipping address to {city}",
        "wrong address on order {order}, it should go to {address}",
        "send my {noun} to my office at {address} instead",
        "how do I change where my order is delivered",
        "edit the shipping address on my order please",
    ),
    "complaint": (
        "the {product} arrived broken and I'm really unhappy",
        "your service is terrible, order {order} was a disaster",
        "I'm very disappointed with the quality of the {noun}",
        "I want to file a complaint about the delivery driver in {city}",
        "the {brand} {noun} stopped working after two days, unacceptable",
        "worst shopping experience ever",
        "nobody answered my emails about order {order}, this is ridiculous",
    ),
    "contact_human_agent": (
        "I want to talk to a real person",
        "connect me with a human agent",
        "can I speak to customer service about order {order}",
        "is there a phone number I can call",
        "get me a live agent please",
        "I need a representative, the bot is not helping",
        "transfer me to someone who can help with my {noun}",
    ),
    "account_help": (
        "I forgot my password",
        "how do I reset my password",
        "I can't log into my account",
        "change the email on my account",
        "how do I delete my account",
        "my account is locked after too many attempts",
        "update my saved {payment} in my profile",
    ),
    "product_question": (
        "what is the {product} made of",
        "does the {product} come with a warranty",
        "what size is the {brand} {noun}",
        "is the {product} compatible with other {category} products",
        "how heavy is the {noun} from {brand}",
        "can the {product} be washed",
        "tell me more about the {product}",
    ),
    "recommend_product": (
        "can you recommend a good {noun}",
        "what's the best {brand} product for a gift",
        "suggest something from {category} for my dad",
        "what {noun} would you recommend under {price} dollars",
        "I liked the {product}, what else would I like",
        "recommend a {noun} for a beginner",
        "what are your most popular {category} items",
    ),
    "out_of_scope": (
        "what's the weather like in {city} today",
        "tell me a joke",
        "who won the football game last night",
        "how do I make pancakes",
        "what's the capital of Australia",
        "what is 17 times 23",
        "play some music",
        "will it rain in {city} tomorrow",
        "translate good morning into Spanish",
        "what time is it in {city}",
    ),
}

# New phrasings that appear only from drift.start_day on (when drift.strength > 0).
DRIFT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "search_product": (
        "yo got any {noun} lol",
        "hunting for a {brand} {noun} rn",
        "need {category} stuff asap",
    ),
    "compare_price": (
        "{product} vs similar stuff, which is the better deal",
        "is {brand} overpriced tbh",
        "price check on {noun} pls",
    ),
    "track_order": (
        "where my stuff at {order}",
        "pkg {order} still not here??",
        "any eta on {order} to {city}",
    ),
    "cancel_order": (
        "nvm dont want {order} anymore, kill it",
        "scrap the {noun} order pls",
        "undo my order {order} rn",
    ),
    "return_item": (
        "gotta send the {noun} back",
        "{product} is a no for me, how to ship it back",
        "returning {order}, label?",
    ),
    "get_refund": (
        "where's my money for {order}",
        "refund for the {noun} still hasnt hit my {payment}",
        "money back on {product} when",
    ),
    "delivery_options": (
        "can u ship to {city} same day",
        "shipping speeds?",
        "cheapest way to get a {noun} delivered",
    ),
    "payment_issue": (
        "{payment} keeps bouncing at checkout",
        "got billed 2x for {order} wtf",
        "cant pay, checkout broken",
    ),
    "apply_coupon": (
        "promo {coupon} dead?",
        "drop code {coupon} on my cart pls",
        "any discount codes rn",
    ),
    "product_availability": (
        "{product} restock when",
        "is {noun} from {brand} back yet",
        "{product} still sold out?",
    ),
    "change_shipping_address": (
        "new addy for {order}: {address}",
        "ship to {address} not my old place",
        "swap address on {order} pls",
    ),
    "complaint": (
        "{product} is trash honestly",
        "so done with this shop, {order} was a mess",
        "zero stars, the {noun} fell apart",
    ),
    "contact_human_agent": (
        "human pls",
        "let me talk to an actual person",
        "bot useless, agent now",
    ),
    "account_help": ("locked out of my acct", "pw reset not working", "cant sign in on the app"),
    "product_question": (
        "is {product} legit waterproof",
        "{brand} {noun} specs?",
        "whats the {product} like irl",
    ),
    "recommend_product": (
        "whats good in {category} rn",
        "gift ideas {noun} under {price}",
        "u got recs like the {product}",
    ),
    "out_of_scope": ("whats the score of the game", "sing me a song", "how hot is it in {city} rn"),
}

# Relative daily frequency of each shop intent (imbalanced, like real support traffic).
INTENT_PRIORS: dict[str, float] = {
    "track_order": 0.15,
    "search_product": 0.11,
    "product_question": 0.09,
    "return_item": 0.08,
    "get_refund": 0.07,
    "payment_issue": 0.07,
    "delivery_options": 0.06,
    "product_availability": 0.06,
    "recommend_product": 0.05,
    "apply_coupon": 0.05,
    "cancel_order": 0.04,
    "account_help": 0.04,
    "compare_price": 0.035,
    "complaint": 0.035,
    "change_shipping_address": 0.03,
    "contact_human_agent": 0.03,
}

# Label noise flips a label to a confusable neighbour (how annotators actually err).
CONFUSABLE: dict[str, tuple[str, ...]] = {
    "get_refund": ("return_item", "cancel_order"),
    "return_item": ("get_refund", "cancel_order"),
    "cancel_order": ("get_refund", "return_item"),
    "track_order": ("delivery_options",),
    "delivery_options": ("track_order", "change_shipping_address"),
    "change_shipping_address": ("delivery_options",),
    "search_product": ("product_availability", "recommend_product"),
    "product_availability": ("search_product",),
    "recommend_product": ("search_product",),
    "compare_price": ("apply_coupon",),
    "apply_coupon": ("compare_price",),
    "complaint": ("contact_human_agent",),
    "contact_human_agent": ("complaint",),
    "payment_issue": ("account_help",),
    "account_help": ("payment_issue",),
    "product_question": ("product_availability",),
}

PREFIXES = (
    "",
    "",
    "",
    "",
    "hi, ",
    "hello ",
    "hey ",
    "hi there, ",
    "excuse me, ",
    "quick question: ",
    "good morning, ",
    "please help, ",
)
SUFFIXES = ("", "", "", "", "?", "!", " please", " thanks", " thank you", " asap", "??", " :)")

CITIES = (
    "Berlin",
    "Madrid",
    "Lisbon",
    "Chicago",
    "Austin",
    "Toronto",
    "Dublin",
    "Lyon",
    "Milan",
    "Seattle",
    "Denver",
    "Warsaw",
    "Prague",
    "Boston",
    "Vienna",
    "Oslo",
    "Manchester",
    "Rotterdam",
    "Porto",
    "Melbourne",
)
STREETS = ("Oak", "Maple", "Elm", "Cedar", "Park", "Lake", "Hill", "River", "Station", "Mill")
PAYMENTS = (
    "credit card",
    "debit card",
    "PayPal",
    "Apple Pay",
    "gift card",
    "Visa card",
    "Mastercard",
    "bank transfer",
)
COUPON_WORDS = ("SAVE", "WELCOME", "SPRING", "FLASH", "VIP", "HOLIDAY", "EXTRA", "FREESHIP")
