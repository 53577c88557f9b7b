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
  const params = new URLSearchParams(window.location.search);
  const token = params.get("session");
  // Keep the token out of the address bar and the history once read.
  if (token) {
    window.history.replaceState(null, "", window.location.pathname);
  }

  const POLL_BUSY_MS = 2000;
  const POLL_IDLE_MS = 20000;
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("dunwell-portal") : null;
  const messageBox = document.getElementById("message");
  const views = new Map(); // subscription id -> view
  let plans = [];
  let documentsSignature = "";

  function say(text, isError) {
    messageBox.textContent = text;
    messageBox.classList.toggle("error", Boolean(isError));
    messageBox.hidden = !text;
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: Object.assign(
          { Authorization: "Bearer " + token },
          body === undefined ? {} : { "Content-Type": "application/json" }
        ),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_networkError) {
      const err = new Error("no connection to the billing service");
      err.status = 0;
      throw err;
    }
    if (response.status === 204) return {};
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = (payload && payload.error) || {};
      const err = new Error(error.message || "request failed (" + response.status + ")");
      err.code = error.code;
      err.status = response.status;
      throw err;
    }
    return payload;
  }

  // Why the server refused, in plain words (the API's code decides).
  const REFUSALS = {
    already_canceling: "Your subscription is already set to end at the end of the period.",
    not_canceling: "Your subscription is not set to end, so there is nothing to undo.",
    cancellation_pending:
      "Your subscription is set to end at the end of the period. Keep it first, then change plan.",
    plan_unchanged: "You are already on that plan.",
    change_in_progress: "Another plan change is waiting for its payment. Please finish it first.",
    subscription_canceled: "This subscription has ended.",
    subscription_ended: "This subscription has ended.",
    period_ended: "The billing period has just ended. Please try again in a moment.",
    invalid_state_for_action: "This subscription does not allow that change right now.",
    unknown_plan: "That plan is not available.",
    unknown_price: "That plan is not available in your currency.",
    invalid_payment_method: "That card could not be used. Please try another card.",
    not_started: "This subscription has not started yet.",
  };

  function why(err) {
    if (err.status === 0) return "No connection to the billing service; nothing was changed.";
    if (err.status === 429) {
      return "Too many requests in a short time; nothing was changed. Please wait a moment.";
    }
    if (err.status === 503) {
      return "The billing service is not reachable right now; nothing was changed. " +
        "Please try again shortly.";
    }
    const words = REFUSALS[err.code] || err.message;
    return words + " Nothing was changed.";
  }

  // Why the workflow reverted a plan change (PlanChangeOut.reason).
  function reversal(reason) {
    if (reason === "authentication_failed") {
      return "Your bank did not confirm the payment, so your plan was not changed. " +
        "Nothing was charged.";
    }
    if (reason === "authentication_timeout") {
      return "The payment was not confirmed in time, so your plan was not changed. " +
        "Nothing was charged.";
    }
    return "The payment for the change failed, so your plan was not changed. " +
      "Nothing was charged; please check your card.";
  }

  // Minor units to a display string, by string arithmetic (no floating point).
  function money(amount, currency) {
    const digits = new Intl.NumberFormat("en", { style: "currency", currency })
      .resolvedOptions().maximumFractionDigits;
    const negative = amount < 0;
    let text = String(Math.abs(amount));
    if (digits > 0) {
      text = text.padStart(digits + 1, "0");
      text = text.slice(0, -digits) + "." + text.slice(-digits);
    }
    return (negative ? "-" : "") + text + " " + currency;
  }

  function day(iso) {
    return iso ? iso.slice(0, 10) : "—";
  }

  function moment(iso) {
    return iso ? iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC" : "—";
  }

  // Parts per million to "19%" or "8.875%", as the invoice prints it.
  function rate(ppm) {
    const whole = Math.floor(ppm / 10000);
    const frac = ppm % 10000;
    return frac === 0 ? whole + "%" : (whole + "." + String(frac).padStart(4, "0"))
      .replace(/0+$/, "") + "%";
  }

  const REASON_NOTES = {
    standard_rated: "",
    reverse_charge: "reverse charge",
    customer_exempt: "exempt",
    not_collecting: "no tax collected",
    not_taxable: "not taxable",
  };

  function field(root, name) {
    return root.querySelector('[data-field="' + name + '"]');
  }

  function action(root, name) {
    return root.querySelector('[data-action="' + name + '"]');
  }

  function cell(row, text, numeric) {
    const td = document.createElement("td");
    td.textContent = text;
    if (numeric) td.className = "num";
    row.appendChild(td);
    return td;
  }

  const BRANDS = {
    amex: "American Express",
    cartes_bancaires: "Cartes Bancaires",
    diners: "Diners Club",
    discover: "Discover",
    jcb: "JCB",
    mastercard: "Mastercard",
    unionpay: "UnionPay",
    visa: "Visa",
  };

  // "Visa •••• 4242 (12/2030)": brand, last four digits and expiry, nothing more.
  function cardText(sub) {
    if (sub.card_label) return sub.card_label;
    const card = sub.payment_method;
    if (!card || !card.last4) return sub.payment_method_id ? "card on file" : "none";
    const raw = card.brand || "";
    const brand = BRANDS[raw.toLowerCase()] ||
      (raw ? raw.charAt(0).toUpperCase() + raw.slice(1) : "Card");
    const expiry = card.exp_month && card.exp_year
      ? " (" + String(card.exp_month).padStart(2, "0") + "/" + card.exp_year + ")"
      : "";
    return brand + " •••• " + card.last4 + expiry;
  }

  // Why a confirmation failed, in words for the customer (the API's code decides).
  const CONFIRM_ERRORS = {
    no_pending_action: "There is no payment waiting for your confirmation any more.",
    payment_intent_mismatch:
      "This payment request has changed in the meantime. Please press Confirm payment again.",
    payment_not_completed:
      "Your bank has not confirmed the payment yet. Please try again.",
  };

  function planName(id) {
    const plan = plans.find((p) => p.id === id);
    return plan ? plan.name : id;
  }

  // The access and grace state in words, with the date.
  function accessText(sub) {
    const end = day(sub.current_period_end);
    switch (sub.status) {
      case "trialing":
        return sub.cancel_at_period_end
          ? "Trial until " + end + "; your access ends then."
          : "Free trial until " + end + ".";
      case "active":
        return sub.cancel_at_period_end
          ? "Your access continues until " + end + ", when the subscription ends."
          : "Active. Renews on " + end + ".";
      case "past_due":
        if (sub.has_access && sub.grace_until) {
          return "Payment overdue. Your access continues until " + moment(sub.grace_until) +
            " while we retry the payment.";
        }
        return sub.has_access
          ? "Payment overdue. Your access continues while we retry the payment."
          : "Payment overdue. Access is paused until the payment succeeds.";
      case "unpaid":
        return "Unpaid. Access is paused until the invoice is paid.";
      case "incomplete":
        return "Waiting for the first payment.";
      case "canceled":
        return "This subscription has ended.";
      default:
        return sub.has_access ? "Active." : "No access.";
    }
  }

  function renderSubscription(view) {
    const section = view.section;
    const sub = view.shown();
    const pending = view.intents.filter((i) => !i.done);
    section.dataset.pending = pending.length ? "true" : "false";
    const pendingLine = field(section, "pending-line");
    pendingLine.hidden = !pending.length;
    pendingLine.textContent = pending.length
      ? "Pending: " + pending.map((i) => i.label).join("; ")
      : "";

    const planField = field(section, "plan");
    planField.textContent = sub.plan_name || planName(sub.plan_id);
    if (pending.some((i) => i.kind === "change")) {
      const badge = document.createElement("span");
      badge.className = "pending-badge";
      badge.textContent = "pending";
      planField.appendChild(badge);
    }
    field(section, "status").textContent = sub.status;
    field(section, "access").textContent = accessText(sub);
    field(section, "period").textContent =
      day(sub.current_period_start) + " → " + day(sub.current_period_end);
    field(section, "price").textContent =
      sub.amount === null ? "—" : money(sub.amount, sub.currency) + " every " + sub.interval;
    field(section, "card").textContent = cardText(sub);

    const pendingAction = sub.pending_action;
    const waiting = Boolean(pendingAction && pendingAction.status === "waiting");
    const banner = field(section, "action-banner");
    banner.hidden = !waiting;
    field(section, "action-text").textContent = waiting
      ? "Your bank needs you to confirm the payment of " +
        money(pendingAction.amount, pendingAction.currency) + " (invoice " +
        pendingAction.invoice_id + ") before " + day(pendingAction.deadline) +
        ", or the renewal will fail."
      : "";
    if (!waiting) field(section, "action-error").hidden = true;

    const problem = sub.payment_problem;
    const showProblem = Boolean(problem) && !waiting &&
      ["past_due", "unpaid", "incomplete"].includes(sub.status);
    field(section, "problem-banner").hidden = !showProblem;
    field(section, "problem-text").textContent = showProblem
      ? problem.message + " Amount due: " + money(problem.amount, problem.currency) + "."
      : "";
    if (showProblem && problem.decline_code) {
      field(section, "problem-banner").dataset.declineCode = problem.decline_code;
    }

    const upgrade = sub.upgrade_authentication;
    const challengeHere = view.intents.some((i) => i.challenging);
    field(section, "upgrade-banner").hidden = !upgrade || challengeHere;
    field(section, "upgrade-text").textContent = upgrade
      ? "Your change to " + planName(upgrade.to_plan_id) + " (" +
        money(upgrade.amount, upgrade.currency) + ") waits for your bank's confirmation " +
        "until " + moment(upgrade.deadline) + ". Without it the change is cancelled " +
        "and nothing is charged."
      : "";

    const cancelNotice = field(section, "cancel-notice");
    cancelNotice.hidden = !sub.cancel_at_period_end;
    cancelNotice.textContent = sub.cancel_at_period_end
      ? "Cancels on " + day(sub.current_period_end) + "; access continues until then."
      : "";
    const scheduled = field(section, "pending-notice");
    scheduled.hidden = !sub.pending_plan_id;
    scheduled.textContent = sub.pending_plan_id
      ? "Switching to " + planName(sub.pending_plan_id) + " on " +
        day(sub.current_period_end) + "."
      : "";
    action(section, "cancel").hidden = sub.cancel_at_period_end;
    action(section, "undo-cancel").hidden = !sub.cancel_at_period_end;

    const select = field(section, "plan-select");
    const chosen = select.value;
    select.textContent = "";
    for (const plan of plans) {
      if (!plan.prices.some((p) => p.currency === sub.currency)) continue;
      if (plan.id === sub.plan_id && !sub.pending_plan_id) continue;
      const option = document.createElement("option");
      option.value = plan.id;
      const price = plan.prices.find((p) => p.currency === sub.currency);
      option.textContent = plan.name + " — " + money(price.amount, sub.currency);
      select.appendChild(option);
    }
    if (chosen && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  // The preview shows the lines, the tax per rate and jurisdiction and the legal mentions
  // exactly as the invoice will print them (api/documents).
  function renderPreview(section, preview) {
    const body = field(section, "preview-lines").querySelector("tbody");
    body.textContent = "";
    const byRate = new Map();
    for (const line of preview.lines) {
      const row = document.createElement("tr");
      row.dataset.kind = line.kind;
      cell(row, line.description);
      cell(row, money(line.amount_excluding_tax, preview.currency), true);
      const rates = line.tax
        .filter((t) => t.rate_ppm > 0)
        .map((t) => t.jurisdiction + " " + rate(t.rate_ppm))
        .join(", ");
      cell(row, money(line.tax_amount, preview.currency) + (rates ? " (" + rates + ")" : ""), true);
      cell(row, money(line.amount_including_tax, preview.currency), true);
      body.appendChild(row);
      for (const t of line.tax) {
        const key = [t.jurisdiction, t.tax_type || "tax", t.rate_ppm, t.reason].join("|");
        const sum = byRate.get(key) || { t, taxable: 0, tax: 0 };
        sum.taxable += t.taxable_amount;
        sum.tax += t.tax_amount;
        byRate.set(key, sum);
      }
    }
    const rateBody = field(section, "preview-tax-rows").querySelector("tbody");
    rateBody.textContent = "";
    for (const key of [...byRate.keys()].sort()) {
      const { t, taxable, tax } = byRate.get(key);
      const row = document.createElement("tr");
      const type = t.tax_type || "tax";
      cell(row, t.jurisdiction);
      cell(row, type.length <= 4 ? type.toUpperCase() : type.replace(/_/g, " "));
      cell(row, rate(t.rate_ppm), true);
      cell(row, REASON_NOTES[t.reason] === undefined ? t.reason.replace(/_/g, " ")
        : REASON_NOTES[t.reason] || "—");
      cell(row, money(taxable, preview.currency), true);
      cell(row, money(tax, preview.currency), true);
      rateBody.appendChild(row);
    }
    field(section, "preview-tax-rows").hidden = byRate.size === 0;
    const when = {
      immediately: "charged now",
      period_end: "from " + day(preview.effective_at),
      trial_swap: "now (trial, nothing to pay)",
      withdraw_scheduled: "now (scheduled change withdrawn)",
    }[preview.effective];
    field(section, "preview-when").textContent = when;
    field(section, "preview-total").textContent = money(preview.total, preview.currency);
    field(section, "preview-tax").textContent =
      "including tax " + money(preview.tax_total, preview.currency) +
      (preview.tax_jurisdiction ? " (" + preview.tax_jurisdiction + ")" : "");
    const mentions = field(section, "preview-mentions");
    mentions.textContent = "";
    for (const text of preview.legal_mentions) {
      const p = document.createElement("p");
      p.textContent = text;
      mentions.appendChild(p);
    }
    mentions.hidden = preview.legal_mentions.length === 0;
    field(section, "preview").hidden = false;
  }

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

  // --- documents ------------------------------------------------------------------------

  async function fetchDocument(path) {
    const response = await fetch(path, { headers: { Authorization: "Bearer " + token } });
    if (!response.ok) {
      const err = new Error("the document is not available (" + response.status + ")");
      err.status = response.status;
      throw err;
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="([^"]+)"/.exec(disposition);
    return { blob: await response.blob(), filename: named ? named[1] : "document.pdf" };
  }

  function documentButtons(row, path, label) {
    const td = document.createElement("td");
    const view = document.createElement("button");
    view.type = "button";
    view.className = "link";
    view.textContent = "View";
    view.setAttribute("aria-label", "View " + label);
    view.addEventListener("click", async () => {
      try {
        const { blob } = await fetchDocument(path);
        window.open(URL.createObjectURL(blob), "_blank");
      } catch (err) {
        say(err.message, true);
      }
    });
    const pdf = document.createElement("button");
    pdf.type = "button";
    pdf.className = "link";
    pdf.textContent = "Download PDF";
    pdf.setAttribute("aria-label", "Download " + label + " as PDF");
    pdf.addEventListener("click", async () => {
      try {
        const { blob, filename } = await fetchDocument(path + ".pdf");
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = filename;
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      } catch (err) {
        say(err.message, true);
      }
    });
    td.append(view, pdf);
    row.appendChild(td);
  }

  async function loadDocuments() {
    const [invoices, notes] = await Promise.all([
      api("GET", "/v1/portal/invoices"),
      api("GET", "/v1/portal/credit-notes"),
    ]);
    const invoiceBody = document.querySelector("#invoices tbody");
    invoiceBody.textContent = "";
    for (const inv of invoices.items) {
      const row = document.createElement("tr");
      row.dataset.invoiceId = inv.id;
      cell(row, inv.number || inv.id);
      cell(row, day(inv.period_start) + " → " + day(inv.period_end));
      cell(row, inv.status);
      cell(row, money(inv.tax_total || 0, inv.currency), true);
      cell(row, money(inv.total || 0, inv.currency), true);
      documentButtons(row, "/v1/portal/invoices/" + encodeURIComponent(inv.id) + "/document",
        "invoice " + (inv.number || inv.id));
      invoiceBody.appendChild(row);
    }
    const noteBody = document.querySelector("#credit-notes tbody");
    noteBody.textContent = "";
    for (const note of notes.items) {
      const row = document.createElement("tr");
      row.dataset.creditNoteId = note.id;
      cell(row, note.number);
      cell(row, note.invoice_id);
      cell(row, note.reason);
      cell(row, money(note.total, note.currency), true);
      documentButtons(row, "/v1/portal/credit-notes/" + encodeURIComponent(note.id) +
        "/document", "credit note " + note.number);
      noteBody.appendChild(row);
    }
  }

  // --- notifications ----------------------------------------------------------------------

  async function loadNotifications() {
    const list = await api("GET", "/v1/portal/notifications");
    const box = document.getElementById("notifications");
    const ul = box.querySelector("ul");
    ul.textContent = "";
    for (const note of list.items) {
      const li = document.createElement("li");
      li.dataset.key = note.key;
      li.dataset.kind = note.kind;
      const text = document.createElement("div");
      const subject = document.createElement("strong");
      subject.textContent = note.subject;
      const when = document.createElement("span");
      when.className = "muted";
      when.textContent = " · " + day(note.created_at);
      const body = document.createElement("p");
      body.textContent = note.body.split("\n").find((line) => line.trim()) || "";
      text.append(subject, when, body);
      const dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.className = "secondary";
      dismiss.textContent = "Dismiss";
      dismiss.setAttribute("aria-label", "Dismiss: " + note.subject);
      dismiss.addEventListener("click", async () => {
        li.hidden = true; // at once; back if the server refuses
        box.hidden = ![...ul.children].some((c) => !c.hidden);
        try {
          await api("POST", "/v1/portal/notifications/" + encodeURIComponent(note.key) +
            "/dismiss");
          li.remove();
          announce();
        } catch (err) {
          li.hidden = false;
          box.hidden = false;
          say("The notification was not dismissed: " + why(err), true);
        }
      });
      li.append(text, dismiss);
      ul.appendChild(li);
    }
    box.hidden = list.items.length === 0;
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
      plans = session.plans;
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
