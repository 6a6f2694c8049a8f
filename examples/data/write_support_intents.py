"""Write examples/data/support_intents.csv: the demo's customer-service messages.

The messages were written for this project. Each intent has hand-written core messages; the
script adds the openers and sign-offs people type around them, seeded, so the file is the same
on every run. Run it again after editing: `python examples/data/write_support_intents.py`.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

PER_INTENT = 50
SEED = 7

CORE = {
    "card_lost": [
        "I lost my card",
        "my debit card is missing",
        "someone stole my wallet with my card in it",
        "I can't find my credit card anywhere",
        "please block my card, it was stolen",
        "my card got swallowed by the atm",
        "I think I left my card at the restaurant",
        "can you freeze my card? I misplaced it",
        "lost my card on the train this morning",
        "my card was taken from my bag",
        "need a replacement card, mine is gone",
        "how do I report a stolen card",
        "card stolen last night, cancel it now",
        "I dropped my card somewhere in town",
        "there are payments I didn't make and my card is missing",
        "my purse was stolen and the card was inside",
        "the cash machine kept my card",
        "I want to freeze my lost card",
        "what should I do if my card is lost abroad",
        "my card disappeared after shopping",
    ],
    "refund_request": [
        "I want my money back for this order",
        "the kettle arrived broken, I need a refund",
        "please refund my last purchase",
        "how long does a refund take",
        "I returned the shoes two weeks ago and still no refund",
        "can I get a refund for the cancelled flight",
        "the item doesn't match the description, refund please",
        "I was charged for something I sent back",
        "my refund hasn't shown up yet",
        "I'd like to return this jacket for a full refund",
        "the headphones stopped working after a day, I want a refund",
        "where is the money for my returned parcel",
        "can you refund the duplicate payment",
        "I never received the goods so I want my money back",
        "refund the difference, the price dropped after I paid",
        "the product was faulty, how do I get reimbursed",
        "you promised a refund last week",
        "I want to send this back and get my money returned",
        "please reimburse me for the damaged order",
        "is it possible to get a refund after 30 days",
    ],
    "delivery_status": [
        "where is my parcel",
        "my order hasn't arrived yet",
        "when will my package be delivered",
        "the tracking number shows no updates",
        "it says delivered but I have nothing",
        "my delivery is three days late",
        "can you tell me where my order is",
        "has my package been shipped yet",
        "the courier never came today",
        "how do I track my shipment",
        "my parcel is stuck at the depot",
        "what is the delivery date for my order",
        "I was out when the driver came, where is my parcel now",
        "the estimated arrival keeps changing",
        "is my order on its way",
        "nothing has arrived and it was due on friday",
        "can I change the delivery address for my order",
        "the package went to the wrong house",
        "why is my shipment taking so long",
        "tracking says out for delivery since yesterday",
    ],
    "account_access": [
        "I can't log in to my account",
        "I forgot my password",
        "the app says my account is locked",
        "how do I reset my password",
        "the verification code never arrives",
        "I'm locked out after too many attempts",
        "my login isn't working anymore",
        "I changed phones and can't sign in",
        "the reset link in the email has expired",
        "it keeps saying wrong password but it's right",
        "two factor authentication is not working",
        "I no longer have access to the email on my account",
        "can you unlock my account",
        "sign in fails with an error every time",
        "I need to recover my username",
        "the app logs me out immediately",
        "my account was blocked for security reasons",
        "password reset page won't load",
        "I can't get past the security questions",
        "how do I get back into my account",
    ],
    "cancel_subscription": [
        "I want to cancel my subscription",
        "please stop my monthly plan",
        "how do I unsubscribe from the premium service",
        "cancel my membership at the end of this month",
        "I don't want to be charged again, end my plan",
        "stop the automatic renewal",
        "I'd like to close my subscription",
        "how can I end the free trial before it charges me",
        "terminate my contract please",
        "turn off auto renew on my account",
        "I'm moving abroad, cancel my plan",
        "I no longer need the service, cancel it",
        "can I pause my subscription instead of cancelling",
        "why am I still subscribed after cancelling",
        "end my gym membership",
        "cancel the annual plan and refund what's left",
        "please confirm my subscription is cancelled",
        "I want to downgrade and then cancel",
        "where is the button to cancel my plan",
        "stop all future payments for the subscription",
    ],
    "billing_question": [
        "why was I charged twice this month",
        "there is a fee on my bill I don't understand",
        "can you explain my latest invoice",
        "my bill is higher than usual",
        "what is this charge from last tuesday",
        "how do I update my payment method",
        "I need a copy of my invoice for taxes",
        "when is my next payment due",
        "can I change the date I get billed",
        "the amount on my statement looks wrong",
        "do you charge a fee for paying by card",
        "I was billed after my discount should apply",
        "how do I add a VAT number to my invoices",
        "what does the service charge cover",
        "my direct debit failed, what happens now",
        "can I pay my bill in instalments",
        "why did the price go up",
        "I see an unknown payment on my statement",
        "where can I download past invoices",
        "is tax included in the price on my bill",
    ],
}
OPENERS = [
    "",
    "",
    "",
    "hi, ",
    "hello, ",
    "hey there. ",
    "good morning, ",
    "quick question: ",
    "urgent: ",
]
SIGN_OFFS = ["", "", "", " thanks", " please help", " asap", " thank you!", "?!", " cheers"]


def messages(intent: str, rng: random.Random) -> list[str]:
    seen: set[str] = set()
    core = CORE[intent]
    while len(seen) < PER_INTENT:
        text = rng.choice(OPENERS) + rng.choice(core) + rng.choice(SIGN_OFFS)
        text = text[0].upper() + text[1:] if rng.random() < 0.5 else text
        seen.add(text)
    return sorted(seen)


def main() -> None:
    rng = random.Random(SEED)
    rows = [(text, intent) for intent in CORE for text in messages(intent, rng)]
    rng.shuffle(rows)
    target = Path(__file__).with_name("support_intents.csv")
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} messages over {len(CORE)} intents to {target}")


if __name__ == "__main__":
    main()
