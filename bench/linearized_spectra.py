#!/usr/bin/python3
"""Measurements behind docs/model-contract.md "4. PredictDistribution" ("Why not low rank").

Fashion-MNIST (first N training rows, z-scored, rows to norm sqrt(d)),
ReLU depth 3, sw^2 = 2, sb^2 = 0, C = 10, eps = 0.1 smoothed targets:
  1. spectra of Theta, K and of D_c^{1/2} Theta D_c^{1/2} / lambda;
  2. relative Frobenius error of the centered LINEARIZED logit covariance
     (50 test queries) when Theta (or K) is replaced by its top-k
     eigenpairs plus a diagonal, or plus the mean of the dropped
     eigenvalues times I ("shift"), inside an otherwise exact computation.
Usage: /usr/bin/python3 bench/linearized_spectra.py N LAMBDA   (N = 1000: ~5 min)
"""
import numpy as np, gzip, struct, os, sys, time
np.random.seed(0)
def _idx(path):
    data = gzip.open(path,'rb').read()
    ndim = struct.unpack(">I", data[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I"*ndim, data[4:4+4*ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4+4*ndim).reshape(dims)
def fmnist(n, m):
    d='/usr/share/datasets/fashion-mnist/'
    x=_idx(d+'train-images-idx3-ubyte.gz').reshape(-1,784)[:n+m]/255.0
    y=_idx(d+'train-labels-idx1-ubyte.gz')[:n+m].astype(int)
    mu=x[:n].mean(0); sd=x[:n].std(0); sc=np.where(sd>0,1/np.where(sd>0,sd,1),1)
    z=(x-mu)*sc; z=z*np.sqrt(784)/np.linalg.norm(z,axis=1,keepdims=True)
    return z[:n],y[:n],z[n:],y[n:]
def kernels(x1,x2,depth=3,sw=2.0,sb=0.0):
    d=x1.shape[1]
    s=sw*x1@x2.T/d+sb; a=sw*(x1*x1).sum(1)/d+sb; b=sw*(x2*x2).sum(1)/d+sb
    t=s.copy()
    for l in range(depth):
        sab=np.sqrt(np.outer(a,b)); rho=np.clip(s/sab,-1,1); th=np.arccos(rho)
        snew=sw*sab*(np.sin(th)+(np.pi-th)*np.cos(th))/(2*np.pi)+sb
        sd=sw*(np.pi-th)/(2*np.pi)
        t=snew+sd*t; s=snew; a=sw*a/2+sb; b=sw*b/2+sb
    return s,t   # K, Theta
def softmax(F):
    F=F-F.max(1,keepdims=True); e=np.exp(F); return e/e.sum(1,keepdims=True)
def Wsqrt_blocks(p):
    N,C=p.shape
    W=np.einsum('nc,cd->ncd',p,np.eye(C))-np.einsum('nc,nd->ncd',p,p)
    w,U=np.linalg.eigh(W); w=np.maximum(w,0)
    return np.einsum('ncj,nj,ndj->ncd',U,np.sqrt(w),U)
def solve2a(theta,Y,lam,iters=40,tol=1e-10):
    N,C=Y.shape; beta=np.zeros((N,C))
    for it in range(iters):
        F=theta@beta; p=softmax(F); g=(Y-p)/lam; r=beta-g
        if np.abs(theta@r).max()<tol*max(1,np.abs(F).max()): break
        S=Wsqrt_blocks(p)
        Sap=lambda V: np.einsum('ncd,nd->nc',S,V)
        A=lambda V: V+Sap(theta@Sap(V))/lam
        # newton: (lam I + W theta) dbeta = lam (g - beta) ; SPD form
        rhs=-Sap(r*lam)/lam  # -S residual ... use: (I + S T S) z = S theta? simpler: solve for dF
        # Solve directly in F-space: dF solves (I + theta W/lam) dF = -(F - theta g) ; dbeta = ...
        # use z: (I + S theta S/lam) z = S (theta g - F)  => dF = theta (g - beta) - theta S z/lam ... 
        b0=Sap(theta@(g-beta))
        z=np.zeros_like(b0); res=b0-A(z); pp=res.copy(); rr=(res*res).sum()
        for k in range(500):
            Ap=A(pp); al=rr/(pp*Ap).sum(); z+=al*pp; res-=al*Ap; rn=(res*res).sum()
            if np.sqrt(rn)<1e-14*np.sqrt((b0*b0).sum()): break
            pp=res+rn/rr*pp; rr=rn
        dbeta=(g-beta)-Sap(z)/lam
        def psi(b):
            Fb=theta@b; Fm=Fb.max(1,keepdims=True); lse=(Fm[:,0]+np.log(np.exp(Fb-Fm).sum(1)))
            return (Y.sum(1)*lse-(Y*Fb).sum(1)).sum()+lam/2*(b*Fb).sum()
        p0=psi(beta); step=1.0
        while psi(beta+step*dbeta)>p0 and step>1e-8: step*=0.5
        beta=beta+step*dbeta
    return theta@beta, beta, it

N = int(sys.argv[1]); lam = float(sys.argv[2]); Mq = 50; C = 10
x, y, xq, yq = fmnist(N, Mq)
Y = np.full((N, C), 0.1 / C); Y[np.arange(N), y] += 0.9
K, Th = kernels(x, x); Kq, Thq = kernels(x, xq); kqq = np.diag(kernels(xq, xq)[0])
F, beta, it = solve2a(Th, Y, lam); p = softmax(F)
et, Ut = np.linalg.eigh(Th); et = et[::-1]; Ut = Ut[:, ::-1]
ek, Uk = np.linalg.eigh(K); ek = ek[::-1]; Uk = Uk[:, ::-1]
for name, e in [('Theta', et), ('K', ek)]:
    e = np.maximum(e, 0)
    print(name, 'top %.3g' % e[0], 'count > 1e-2,1e-3,1e-4 x top:',
          [int((e > t * e[0]).sum()) for t in (1e-2, 1e-3, 1e-4)],
          'e[k]/e[0] k=10,50,100,200,500:', ['%.2e' % (e[k] / e[0]) for k in (10, 50, 100, 200, 500) if k < N],
          'tail trace fraction after k=50,200,500:', ['%.2e' % (e[k:].sum() / e.sum()) for k in (50, 200, 500) if k < N])
ea = np.array([np.linalg.eigvalsh(np.sqrt(p[:, c])[:, None] * Th * np.sqrt(p[:, c])[None, :] / lam) for c in range(C)])
print('D_c^1/2 Theta D_c^1/2 / lambda: eigenvalues > 1, 0.1, 1e-2 (min..max over c):',
      [(int((ea > t).sum(1).min()), int((ea > t).sum(1).max())) for t in (1, 0.1, 1e-2)])

def cov(Thb, Kb, v, k):
    E = []
    for c in range(C):
        sd = np.sqrt(p[:, c]); S = np.eye(N) + sd[:, None] * Thb * sd[None, :] / lam
        E.append(sd[:, None] * np.linalg.solve(S, np.diag(sd)))
    Mm = sum(E)
    a = [E[c] @ v for c in range(C)]; g = [np.linalg.solve(Mm, a[c]) for c in range(C)]
    X = np.array([[(a[c] if c == c2 else 0) - E[c2] @ g[c] for c in range(C)] for c2 in range(C)])
    T1 = np.einsum('dcim,im->mcd', X, k)
    KX = np.array([[Kb @ X[c2][c] for c in range(C)] for c2 in range(C)])
    T2 = np.einsum('eaim,ebim->mab', X, KX)
    S = kqq[:, None, None] * np.eye(C)[None] - T1 - T1.transpose(0, 2, 1) + T2
    P = np.eye(C) - 1.0 / C
    return np.einsum('ab,mbc,cd->mad', P, S, P)

v = Thq / lam
ref = cov(Th, K, v, Kq); nr = np.linalg.norm(ref)
def lr_diag(U, e, A, k):
    L = (U[:, :k] * e[:k]) @ U[:, :k].T
    return L + np.diag(np.maximum(np.diag(A) - np.diag(L), 0))
def lr_shift(U, e, k):
    c = e[k:].mean()
    return (U[:, :k] * (e[:k] - c)) @ U[:, :k].T + c * np.eye(N)
for k in (50, 100, 200, 400, 700):
    errs = [np.linalg.norm(cov(lr_diag(Ut, et, Th, k), K, v, Kq) - ref) / nr,
            np.linalg.norm(cov(Th, lr_diag(Uk, ek, K, k), v, Kq) - ref) / nr,
            np.linalg.norm(cov(lr_shift(Ut, et, k), K, v, Kq) - ref) / nr,
            np.linalg.norm(cov(Th, lr_shift(Uk, ek, k), v, Kq) - ref) / nr]
    print('k=%d  rel. error: Theta lr+diag %.2e  K lr+diag %.2e  Theta lr+shift %.2e  K lr+shift %.2e' % ((k,) + tuple(errs)), flush=True)
