// Dunwell customer portal. Talks to the portal API with the session token as a bearer
// token. Card details are typed into the gateway's own card element and confirmed with
// Stripe.js straight against the gateway; this page sends our API only the resulting
// payment method token (pm_...). A payment the bank wants confirmed (3-D Secure) is
// completed the same way: the API hands over the PaymentIntent's client secret, Stripe.js
// runs the bank's check, and the page sends back only the payment intent id (pi_...).
//
// Optimistic updates: an action (change plan, cancel, undo, set card) is shown at once as
// an "intent" laid over the last state the server gave, marked pending; the server's
// answer settles it, and a refusal (409, 422, 429, 503) or a reversal by the workflow
// (a proration charge that failed, a 3-D Secure not passed) rolls it back and says why.
//
// Outcomes that come later than the answer (an update the server could not finish in
// time, a 3-D Secure deadline, another tab's action, a renewal) are learnt by polling
// GET /v1/portal/subscriptions: every 2 s while something is in flight or waiting, every
// 20 s otherwise, at once when the tab becomes visible again, and never while it is
// hidden. Tabs of the same browser also tell each other through a BroadcastChannel, so
// the other tab refreshes at once. Why polling and not server-sent events: the
// workflow's state is read by a Temporal query, which cannot block or push, so an SSE
// endpoint would itself poll that query for every open tab while holding a connection
// and a server task per tab through every proxy in between; polling the same query from
// the page is as fresh, works behind any proxy and any number of stateless API replicas,
// and costs nothing while the tab is hidden.
"use strict";

(function () {
  const P = window.DunwellPortal;
  const params = new URLSearchParams(window.location.search);
  const token = params.get("session");
  // Keep the token out of the address bar and the history once read.
  if (token) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  P.token = token;

  const POLL_BUSY_MS = 2000;
  const POLL_IDLE_MS = 20000;
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("dunwell-portal") : null;
  const views = new Map(); // subscription id -> view
  let documentsSignature = "";
  const {
    say, api, why, reversal, money, day, field, action, CONFIRM_ERRORS, planName,
    renderSubscription, renderPreview, loadDocuments, loadNotifications,
  } = P;

  async function loadStripe(url) {
    if (window.Stripe) return window.Stripe;
    await new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = resolve;
      script.onerror = () => reject(new Error("could not load the payment form"));
      document.head.appendChild(script);
    });
    return window.Stripe;
  }

  // --- optimistic intents -------------------------------------------------------------

  function makeView(section, sub) {
    const view = {
      section,
      server: sub,
      intents: [],
      shown() {
        return view.intents.reduce((s, intent) => intent.apply(s), Object.assign({}, view.server));
      },
      adopt(next) {
        if (next) view.server = next;
        // An outcome the server shows before (or instead of) the answer: polling, another
        // tab, an answer lost to a time-out. Settle or roll back what it decides.
        for (const intent of view.intents.slice()) {
          if (!intent.resolve || intent.challenging) continue;
          const verdict = intent.resolve(view.server);
          if (verdict && verdict.confirmed) settle(view, intent, null, verdict.text);
          else if (verdict && verdict.reverted) rollback(view, intent, verdict.text);
        }
        renderSubscription(view);
      },
    };
    return view;
  }

  function begin(view, intent) {
    intent.startedAt = Date.now();
    view.intents.push(intent);
    say("");
    renderSubscription(view);
    schedulePoll(); // poll at the busy pace while the intent is open
  }

  function drop(view, intent) {
    view.intents = view.intents.filter((i) => i !== intent);
  }

  function settle(view, intent, subscription, text) {
    drop(view, intent);
    if (subscription) view.server = subscription;
    renderSubscription(view);
    if (text) say(text);
    announce();
    refreshSoon(); // a read issued before this answer must not be the last word
  }

  function rollback(view, intent, text, subscription) {
    drop(view, intent);
    if (subscription) view.server = subscription;
    renderSubscription(view);
    say(text, true);
    announce();
    refreshSoon();
  }

  // The answer did not say how it ended (the server could not finish in time): the
  // intent stays pending until polling shows its outcome.
  function keepWaiting(view, intent, text) {
    intent.waiting = true;
    renderSubscription(view);
    say(text);
    schedulePoll();
  }

  function announce() {
    if (channel) channel.postMessage({ type: "changed" });
  }
  P.announce = announce;

  const CHANGE_WORDS = {
    applied: "Plan change applied.",
    scheduled: "Plan change scheduled.",
    withdrawn: "Plan change withdrawn.",
    swapped_in_trial: "Plan change swapped_in_trial.",
  };

  function changeIntent(sub, preview) {
    const to = preview.to_plan_id;
    const name = planName(to);
    return {
      kind: "change",
      label: preview.effective === "period_end"
        ? "switching to " + name + " on " + day(preview.effective_at)
        : "changing to " + name,
      apply(s) {
        if (preview.effective === "period_end") return Object.assign(s, { pending_plan_id: to });
        if (preview.effective === "withdraw_scheduled") {
          return Object.assign(s, { pending_plan_id: null });
        }
        return Object.assign(s, { plan_id: to, plan_name: name });
      },
      resolve(s) {
        const since = new Date(this.startedAt - 60000).toISOString();
        const record = (s.plan_changes || []).slice().reverse()
          .find((c) => c.to_plan === to && c.requested_at >= since);
        if (s.upgrade_authentication && s.upgrade_authentication.to_plan_id === to) return null;
        if (record && record.outcome === "reverted") {
          return { reverted: true, text: reversal(record.reason) };
        }
        if (record) return { confirmed: true, text: CHANGE_WORDS[record.outcome] };
        return null;
      },
    };
  }

  async function changePlan(view, base, preview) {
    const intent = changeIntent(view.server, preview);
    begin(view, intent);
    let result;
    try {
      result = await api("POST", base + "/change-plan", { plan_id: preview.to_plan_id });
    } catch (err) {
      if (err.code === "update_timeout") {
        keepWaiting(view, intent, "Your change is taking longer than usual; " +
          "this page will show the outcome when it is done.");
      } else {
        rollback(view, intent, why(err));
      }
      return;
    }
    if (result.outcome === "requires_action") {
      intent.challenging = true;
      intent.label = "waiting for your bank to confirm the payment of " +
        money(result.subscription.upgrade_authentication.amount, result.subscription.currency);
      view.server = result.subscription;
      renderSubscription(view);
      let verdict = "failed";
      try {
        const StripeJs = await loadStripe(result.stripe_js_url);
        const confirmed = await StripeJs(result.publishable_key)
          .confirmCardPayment(result.client_secret);
        if (!confirmed.error && confirmed.paymentIntent &&
            confirmed.paymentIntent.status === "succeeded") {
          verdict = "succeeded";
        }
      } catch (_stripeError) {
        verdict = "failed";
      }
      intent.challenging = false;
      try {
        result = await api("POST", base + "/change-plan/authentication", {
          payment_intent_id: result.payment_intent_id,
          outcome: verdict,
        });
      } catch (err) {
        if (err.code === "payment_not_completed" || err.code === "update_timeout") {
          keepWaiting(view, intent, "Your bank has not confirmed the payment yet; " +
            "this page will show the outcome when it has.");
        } else if (err.code === "no_pending_authentication") {
          keepWaiting(view, intent, "");
          refreshSoon();
        } else {
          rollback(view, intent, why(err));
        }
        return;
      }
    }
    if (result.outcome === "reverted") {
      rollback(view, intent, reversal(result.reason), result.subscription);
    } else {
      settle(view, intent, result.subscription, CHANGE_WORDS[result.outcome] ||
        "Plan change " + result.outcome + ".");
    }
    await loadDocuments();
  }

  async function simpleAction(view, intent, send, done) {
    begin(view, intent);
    try {
      const result = await send();
      settle(view, intent, result.subscription, done(result));
    } catch (err) {
      if (err.code === "update_timeout") {
        keepWaiting(view, intent, "Your change is taking longer than usual; " +
          "this page will show the outcome when it is done.");
      } else {
        rollback(view, intent, why(err));
      }
    }
  }

  function wire(view) {
    const section = view.section;
    const sub = view.server;
    const base = "/v1/portal/subscriptions/" + encodeURIComponent(sub.id);
    let previewed = null;
    let cardElement = null;
    let stripe = null;
    let clientSecret = null;

    const run = (button, work) => async () => {
      button.disabled = true;
      say("");
      try {
        await work();
      } catch (err) {
        say(why(err), true);
      } finally {
        button.disabled = false;
      }
    };

    const preview = action(section, "preview");
    preview.addEventListener("click", run(preview, async () => {
      const planId = field(section, "plan-select").value;
      previewed = await api("POST", base + "/preview-change", { plan_id: planId });
      renderPreview(section, previewed);
    }));

    const confirmChange = action(section, "confirm-change");
    confirmChange.addEventListener("click", () => {
      if (!previewed) return;
      const chosen = previewed;
      previewed = null;
      field(section, "preview").hidden = true;
      changePlan(view, base, chosen);
    });

    action(section, "dismiss-preview").addEventListener("click", () => {
      field(section, "preview").hidden = true;
      previewed = null;
    });

    action(section, "cancel").addEventListener("click", () => simpleAction(
      view,
      {
        kind: "cancel",
        label: "cancelling at the end of the period",
        apply: (s) => Object.assign(s, { cancel_at_period_end: true }),
        resolve: (s) => (s.cancel_at_period_end
          ? { confirmed: true, text: "Your subscription will end on " +
              day(s.current_period_end) + "." }
          : null),
      },
      () => api("POST", base + "/cancel"),
      (result) => "Your subscription will end on " + day(result.access_until) + "."
    ));

    action(section, "undo-cancel").addEventListener("click", () => simpleAction(
      view,
      {
        kind: "undo",
        label: "keeping your subscription",
        apply: (s) => Object.assign(s, { cancel_at_period_end: false }),
        resolve: (s) => (!s.cancel_at_period_end
          ? { confirmed: true, text: "Your subscription will continue." }
          : null),
      },
      () => api("POST", base + "/undo-cancel"),
      () => "Your subscription will continue."
    ));

    const actionError = field(section, "action-error");
    const showActionError = (text) => {
      actionError.textContent = text;
      actionError.hidden = !text;
    };
    const confirmPayment = action(section, "confirm-payment");
    confirmPayment.addEventListener("click", async () => {
      confirmPayment.disabled = true;
      say("");
      showActionError("");
      try {
        const started = await api("POST", base + "/confirm-payment");
        let after = started.subscription;
        if (started.outcome === "requires_action") {
          const StripeJs = await loadStripe(started.stripe_js_url);
          const payer = StripeJs(started.publishable_key);
          const result = await payer.confirmCardPayment(started.client_secret);
          if (result.error) {
            throw new Error("The payment was not confirmed: " +
              (result.error.message || "your bank did not approve it") + ".");
          }
          if (!result.paymentIntent || result.paymentIntent.status !== "succeeded") {
            throw new Error("The payment was not confirmed: your bank did not approve it. " +
              "Please try again, or update your card.");
          }
          const done = await api("POST", base + "/confirm-payment/complete", {
            payment_intent_id: started.payment_intent_id,
          });
          after = done.subscription;
        }
        view.adopt(after);
        await loadDocuments();
        say("Payment confirmed. Thank you!");
        announce();
      } catch (err) {
        if (err.code === "no_pending_action") {
          // Settled (or expired) meanwhile: show the subscription as it is now.
          refreshSoon();
          say(CONFIRM_ERRORS.no_pending_action, true);
        } else {
          showActionError(CONFIRM_ERRORS[err.code] ||
            err.message + (err.code ? " [" + err.code + "]" : ""));
        }
      } finally {
        confirmPayment.disabled = false;
      }
    });

    const openCardForm = async () => {
      const intent = await api("POST", base + "/payment-method/setup-intent");
      const StripeJs = await loadStripe(intent.stripe_js_url);
      stripe = StripeJs(intent.publishable_key);
      clientSecret = intent.client_secret;
      const mount = field(section, "card-mount");
      if (cardElement) cardElement.unmount();
      mount.textContent = "";
      cardElement = stripe.elements().create("card");
      cardElement.mount(mount);
      for (const input of mount.querySelectorAll("input")) {
        if (!input.getAttribute("aria-label")) {
          input.setAttribute("aria-label", "Card " + (input.placeholder || "detail").replace("_", " "));
        }
      }
      field(section, "card-form").hidden = false;
    };
    const updateCard = action(section, "update-card");
    updateCard.addEventListener("click", run(updateCard, openCardForm));
    const problemCard = action(section, "problem-update-card");
    problemCard.addEventListener("click", run(problemCard, async () => {
      await openCardForm();
      field(section, "card-mount").scrollIntoView({ block: "center" });
    }));

    const saveCard = action(section, "save-card");
    saveCard.addEventListener("click", run(saveCard, async () => {
      const result = await stripe.confirmCardSetup(clientSecret, {
        payment_method: { card: cardElement },
      });
      if (result.error) throw new Error(result.error.message || "the card was not accepted");
      const paymentMethod = result.setupIntent.payment_method;
      const pmToken = typeof paymentMethod === "string" ? paymentMethod : paymentMethod.id;
      field(section, "card-form").hidden = true;
      cardElement.unmount();
      cardElement = null;
      await simpleAction(
        view,
        {
          kind: "card",
          label: "saving your new card",
          apply: (s) => Object.assign(s, { card_label: "new card (saving…)" }),
          resolve: (s) => (s.payment_method_id === pmToken
            ? { confirmed: true, text: "Your new card is saved." }
            : null),
        },
        () => api("POST", base + "/payment-method", { payment_method_id: pmToken }),
        (saved) => "Card " + (saved.brand || "") + " ending " + (saved.last4 || "?") + " saved."
      );
    }));
  }


  // --- polling ----------------------------------------------------------------------------

  let pollTimer = null;
  let refreshing = null;
  let refreshAgain = false;

  function busy() {
    return [...views.values()].some((v) => {
      const s = v.server;
      return v.intents.length > 0 || s.migrating_to || s.upgrade_authentication ||
        (s.pending_action && s.pending_action.status === "waiting");
    });
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    if (document.hidden) return;
    pollTimer = setTimeout(refreshSoon, busy() ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  async function refresh() {
    const list = await api("GET", "/v1/portal/subscriptions");
    for (const sub of list.items) {
      const view = views.get(sub.id);
      if (view) view.adopt(sub);
    }
    const signature = list.items
      .map((s) => s.recent_invoices.map((i) => i.invoice_id + ":" + i.status).join(","))
      .join(";");
    if (signature !== documentsSignature) {
      documentsSignature = signature;
      await loadDocuments();
    }
    await loadNotifications();
  }

  // One refresh at a time; a request for another while one runs makes one more after it.
  function refreshSoon() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    clearTimeout(pollTimer);
    refreshing = refresh()
      .catch(() => undefined) // keep what is on screen; the next poll tries again
      .finally(() => {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          refreshSoon();
        } else {
          schedulePoll();
        }
      });
    return refreshing;
  }

  async function start() {
    if (!token) {
      say("This page needs a portal session link.", true);
      return;
    }
    try {
      const session = await api("GET", "/v1/portal/session");
      P.plans = session.plans;
      document.getElementById("customer-name").textContent = session.customer_name;
      const list = await api("GET", "/v1/portal/subscriptions");
      const container = document.getElementById("subscriptions");
      const template = document.getElementById("subscription-template");
      for (const sub of list.items) {
        const section = template.content.firstElementChild.cloneNode(true);
        section.dataset.subscriptionId = sub.id;
        section.setAttribute("aria-label", "Subscription " + (sub.plan_name || sub.plan_id));
        container.appendChild(section);
        const view = makeView(section, sub);
        views.set(sub.id, view);
        renderSubscription(view);
        wire(view);
      }
      if (!list.items.length) say("You have no subscriptions.");
      documentsSignature = list.items
        .map((s) => s.recent_invoices.map((i) => i.invoice_id + ":" + i.status).join(","))
        .join(";");
      await Promise.all([loadDocuments(), loadNotifications()]);
      document.body.dataset.ready = "true";
      if (channel) channel.onmessage = () => refreshSoon();
      document.addEventListener("visibilitychange", () => {
        if (document.hidden) clearTimeout(pollTimer);
        else refreshSoon();
      });
      schedulePoll();
    } catch (err) {
      say(err.status === 401 ? "Your portal session has expired; open the portal again."
        : err.message, true);
      document.body.dataset.ready = "error";
    }
  }


  start();
})();
