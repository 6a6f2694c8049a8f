"""Write examples/data/kefu_intents.csv: a Chinese bank customer-service desk's messages.

Written for this project (客服 = customer service), as the English demo's messages were: each
intent has hand-written core messages, and the script adds the greetings and closings people
type around them, seeded, so the file is the same on every run. Run it again after editing:
`python examples/data/write_kefu_intents.py`.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

PER_INTENT = 40
SEED = 11

CORE = {
    "挂失": [
        "我的银行卡丢了",
        "我的银行卡被偷了",
        "卡丢了怎么挂失",
        "钱包被偷了，里面有信用卡",
        "我想冻结我的借记卡",
        "卡被取款机吞了",
        "找不到我的信用卡了",
        "帮我把卡停用一下，卡不见了",
        "出差的时候卡丢了怎么办",
        "银行卡丢失需要补办",
        "我的卡好像落在饭店了",
        "有几笔消费不是我做的，卡也找不到了",
    ],
    "还款": [
        "信用卡怎么还款",
        "这个月的账单什么时候还",
        "我想提前还清贷款",
        "还款日是哪一天",
        "可以分期还款吗",
        "逾期还款会怎么样",
        "自动还款怎么设置",
        "我已经还款了为什么还显示欠款",
        "最低还款额是多少",
        "房贷可以晚几天还吗",
        "用支付宝能还信用卡吗",
        "还款失败了怎么回事",
    ],
    "查询余额": [
        "查一下我的余额",
        "我卡里还有多少钱",
        "怎么查询账户余额",
        "工资到账了吗",
        "帮我看看储蓄卡的余额",
        "余额显示不对",
        "能告诉我账户里还剩多少吗",
        "手机银行怎么看余额",
        "我想查最近的交易明细",
        "昨天的转账到了没有",
        "信用卡还有多少额度",
        "为什么余额少了两百块",
    ],
    "转账": [
        "我想给朋友转账",
        "跨行转账要手续费吗",
        "转账一天最多能转多少",
        "转错账户了能撤回吗",
        "怎么给国外的账户汇款",
        "转账一直显示处理中",
        "对方说没收到我的转账",
        "手机银行转账怎么操作",
        "能不能预约明天转账",
        "转账限额怎么调高",
        "给自己另一张卡转钱",
        "大额转账需要去柜台吗",
    ],
    "投诉": [
        "我要投诉你们的服务",
        "柜台工作人员态度太差了",
        "排队排了一个小时都没人管",
        "你们乱扣我的手续费",
        "客服电话一直打不通",
        "短信骚扰太多了，我要投诉",
        "说好的优惠根本没有兑现",
        "这个问题反映了三次都没解决",
        "你们的手机银行老是闪退",
        "理财经理误导我买了产品",
        "对处理结果非常不满意",
        "我要找你们领导反映问题",
    ],
    "人工客服": [
        "转人工",
        "我要找人工客服",
        "能不能让真人来回答",
        "机器人听不懂，给我转人工",
        "请帮我接通人工服务",
        "有没有人工客服",
        "我想和客服人员通话",
        "人工客服几点下班",
        "别让机器人回复了",
        "怎么联系在线客服",
        "给我一个能说话的人",
        "人工服务电话是多少",
    ],
}
OPENERS = ["", "", "", "你好，", "您好，", "请问", "麻烦问一下，", "急！", "喂，"]
CLOSINGS = ["", "", "", "，谢谢", "？", "，麻烦尽快", "，谢谢你", "！", "，在线等"]


def messages(intent: str, rng: random.Random) -> list[str]:
    seen: set[str] = set()
    core = CORE[intent]
    while len(seen) < PER_INTENT:
        seen.add(rng.choice(OPENERS) + rng.choice(core) + rng.choice(CLOSINGS))
    return sorted(seen)


def main() -> None:
    rng = random.Random(SEED)
    rows = [(text, intent) for intent in CORE for text in messages(intent, rng)]
    rng.shuffle(rows)
    target = Path(__file__).with_name("kefu_intents.csv")
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} messages over {len(CORE)} intents to {target}")


if __name__ == "__main__":
    main()
