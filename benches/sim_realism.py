"""Is the simulated platform realistic enough to learn from? (issue 2)

    churn simulate --learners 20000 --seed 42 --out /tmp/sim
    .venv/bin/python benches/sim_realism.py /tmp/sim

Builds crude point-in-time features with pandas at 14-day snapshots (recency,
counts over 7/30 days, mean latency and quiz score, tenure, plan), labels them
with DESIGN.md's definition, trains LightGBM and a logistic regression on the
early snapshots and scores the last one. A realistic platform gives churn rates
of roughly 15-30% and a test AUC around 0.8-0.9, with the tree model ahead.
This is an independent check of the simulator, not the product's feature code.
"""

import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

d = sys.argv[1] if len(sys.argv) > 1 else 'data'
ev=pd.read_parquet(f'{d}/events.parquet'); le=pd.read_parquet(f'{d}/learners.parquet')
act={'login','video_watch','lesson_complete','quiz_attempt','forum_post','checkin','live_class'}
ev['act']=ev.event_type.isin(act)
start=pd.Timestamp('2026-01-01',tz='UTC'); H=pd.Timedelta(days=30)
rows=[]
for k in range(3,12):
    t=start+pd.Timedelta(days=14*k)
    past=ev[ev.ts<=t]; fut=ev[(ev.ts>t)&(ev.ts<=t+H)]
    la=past[past.act].groupby('learner_id').ts.max()
    elig=la[la>t-H].index
    fa=fut[fut.act].groupby('learner_id').size()
    canc=fut[fut.event_type=='subscription_cancel'].groupby('learner_id').size()
    f=pd.DataFrame(index=elig)
    f['rec']=(t-la[elig]).dt.total_seconds()/86400
    for w in (7,30):
        p=past[past.ts>t-pd.Timedelta(days=w)]
        for et in ['login','video_watch','lesson_complete','refund_page_view','checkin','forum_post','live_class']:
            f[f'{et}_{w}']=p[p.event_type==et].groupby('learner_id').size().reindex(elig).fillna(0)
    lc=past[past.event_type=='live_class'].groupby('learner_id').latency_ms.mean(); f['lat']=lc.reindex(elig)
    q=past[past.event_type=='quiz_attempt'].groupby('learner_id').score.mean(); f['quiz']=q.reindex(elig)
    lec=past[past.event_type=='lesson_complete'].groupby('learner_id').size().reindex(elig).fillna(0)
    s=le.set_index('learner_id').loc[elig]
    f['ten']=(t-s.signup_at).dt.total_seconds()/86400
    f['lc_per_day']=lec/f.ten.clip(lower=1)
    f['plan']=s.plan.map({'free':0,'monthly':1,'annual':2})
    f['y']=((fa.reindex(elig).fillna(0)==0)|(canc.reindex(elig).fillna(0)>0)).astype(int)
    f['k']=k
    rows.append(f)
df=pd.concat(rows)
print(df.groupby('k').y.agg(['mean','size']))
tr=df[df.k<=8]; te=df[df.k==11]
X=[c for c in df.columns if c not in('y','k')]
m=lgb.LGBMClassifier(n_estimators=200,learning_rate=0.05,num_leaves=31,verbose=-1).fit(tr[X],tr.y)
print('gbdt test AUC',roc_auc_score(te.y,m.predict_proba(te[X])[:,1]))
lr=make_pipeline(StandardScaler(),LogisticRegression(max_iter=2000)).fit(tr[X].fillna(0),tr.y)
print('logistic test AUC',roc_auc_score(te.y,lr.predict_proba(te[X].fillna(0))[:,1]))
