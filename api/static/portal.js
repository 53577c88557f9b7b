// Dunwell customer portal. Talks to the portal API with the session token as a bearer
// token. Card details are typed into the gateway's own card element and confirmed with
// Stripe.js straight against the gateway; this page sends our API only the resulting
// payment method token (pm_...). A payment the bank wants confirmed (3-D Secure) is
// completed the same way: the API hands over the PaymentIntent's client secret, Stripe.js
// runs the bank's check, and the page sends back only the payment intent id (pi_...).
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const token = params.get("session");
  // Keep the token out of the address bar and the history once read.
  if (token) {
    window.history.replaceState(null, "", window.location.pathname);
  }

  const messageBox = document.getElementById("message");
  let plans = [];

  function say(text, isError) {
    messageBox.textContent = text;
    messageBox.classList.toggle("error", Boolean(isError));
    messageBox.hidden = !text;
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: Object.assign(
        { Authorization: "Bearer " + token },
        body === undefined ? {} : { "Content-Type": "application/json" }
      ),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
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

  function renderSubscription(section, sub) {
    field(section, "plan").textContent = sub.plan_name || sub.plan_id;
    field(section, "status").textContent = sub.status;
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

    const cancelNotice = field(section, "cancel-notice");
    cancelNotice.hidden = !sub.cancel_at_period_end;
    cancelNotice.textContent = sub.cancel_at_period_end
      ? "Cancels on " + day(sub.current_period_end) + "; access continues until then."
      : "";
    const pending = field(section, "pending-notice");
    pending.hidden = !sub.pending_plan_id;
    pending.textContent = sub.pending_plan_id
      ? "Switching to " + planName(sub.pending_plan_id) + " on " + day(sub.current_period_end) + "."
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

  function renderPreview(section, preview) {
    const body = field(section, "preview-lines").querySelector("tbody");
    body.textContent = "";
    for (const line of preview.lines) {
      const row = document.createElement("tr");
      row.dataset.kind = line.kind;
      cell(row, line.description);
      cell(row, money(line.amount_excluding_tax, preview.currency), true);
      const rates = line.tax
        .filter((t) => t.rate_ppm > 0)
        .map((t) => t.jurisdiction + " " + t.rate_ppm / 10000 + "%")
        .join(", ");
      cell(row, money(line.tax_amount, preview.currency) + (rates ? " (" + rates + ")" : ""), true);
      cell(row, money(line.amount_including_tax, preview.currency), true);
      body.appendChild(row);
    }
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

  function wire(section, sub) {
    const base = "/v1/portal/subscriptions/" + encodeURIComponent(sub.id);
    let current = sub;
    let previewedPlan = null;
    let cardElement = null;
    let stripe = null;
    let clientSecret = null;

    const refresh = (next) => {
      current = next;
      renderSubscription(section, current);
    };
    const run = (button, work) => async () => {
      button.disabled = true;
      say("");
      try {
        await work();
      } catch (err) {
        say(err.message + (err.code ? " [" + err.code + "]" : ""), true);
      } finally {
        button.disabled = false;
      }
    };

    const preview = action(section, "preview");
    preview.addEventListener("click", run(preview, async () => {
      const planId = field(section, "plan-select").value;
      const result = await api("POST", base + "/preview-change", { plan_id: planId });
      previewedPlan = planId;
      renderPreview(section, result);
    }));

    const confirmChange = action(section, "confirm-change");
    confirmChange.addEventListener("click", run(confirmChange, async () => {
      const result = await api("POST", base + "/change-plan", { plan_id: previewedPlan });
      field(section, "preview").hidden = true;
      refresh(result.subscription);
      say(result.outcome === "reverted"
        ? "The payment for the change failed; your plan was not changed."
        : "Plan change " + result.outcome + ".");
      await loadDocuments();
    }));

    const dismiss = action(section, "dismiss-preview");
    dismiss.addEventListener("click", () => {
      field(section, "preview").hidden = true;
      previewedPlan = null;
    });

    const cancel = action(section, "cancel");
    cancel.addEventListener("click", run(cancel, async () => {
      const result = await api("POST", base + "/cancel");
      refresh(result.subscription);
      say("Your subscription will end on " + day(result.access_until) + ".");
    }));

    const undo = action(section, "undo-cancel");
    undo.addEventListener("click", run(undo, async () => {
      const result = await api("POST", base + "/undo-cancel");
      refresh(result.subscription);
      say("Your subscription will continue.");
    }));

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
        refresh(after);
        await loadDocuments();
        say("Payment confirmed. Thank you!");
      } catch (err) {
        if (err.code === "no_pending_action") {
          // Settled (or expired) meanwhile: show the subscription as it is now.
          try {
            refresh(await api("GET", base));
          } catch (_ignored) {
            // keep what is on screen
          }
          say(CONFIRM_ERRORS.no_pending_action, true);
        } else {
          showActionError(CONFIRM_ERRORS[err.code] ||
            err.message + (err.code ? " [" + err.code + "]" : ""));
        }
      } finally {
        confirmPayment.disabled = false;
      }
    });

    const updateCard = action(section, "update-card");
    updateCard.addEventListener("click", run(updateCard, async () => {
      const intent = await api("POST", base + "/payment-method/setup-intent");
      const StripeJs = await loadStripe(intent.stripe_js_url);
      stripe = StripeJs(intent.publishable_key);
      clientSecret = intent.client_secret;
      const mount = field(section, "card-mount");
      if (cardElement) cardElement.unmount();
      mount.textContent = "";
      cardElement = stripe.elements().create("card");
      cardElement.mount(mount);
      field(section, "card-form").hidden = false;
    }));

    const saveCard = action(section, "save-card");
    saveCard.addEventListener("click", run(saveCard, async () => {
      const result = await stripe.confirmCardSetup(clientSecret, {
        payment_method: { card: cardElement },
      });
      if (result.error) throw new Error(result.error.message || "the card was not accepted");
      const paymentMethod = result.setupIntent.payment_method;
      const pmToken = typeof paymentMethod === "string" ? paymentMethod : paymentMethod.id;
      const saved = await api("POST", base + "/payment-method", { payment_method_id: pmToken });
      field(section, "card-form").hidden = true;
      cardElement.unmount();
      cardElement = null;
      refresh(saved.subscription);
      say("Card " + (saved.brand || "") + " ending " + (saved.last4 || "?") + " saved.");
    }));
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
      cell(row, inv.number || inv.id);
      cell(row, day(inv.period_start) + " → " + day(inv.period_end));
      cell(row, inv.status);
      cell(row, money(inv.tax_total || 0, inv.currency), true);
      cell(row, money(inv.total || 0, inv.currency), true);
      invoiceBody.appendChild(row);
    }
    const noteBody = document.querySelector("#credit-notes tbody");
    noteBody.textContent = "";
    for (const note of notes.items) {
      const row = document.createElement("tr");
      cell(row, note.number);
      cell(row, note.invoice_id);
      cell(row, note.reason);
      cell(row, money(note.total, note.currency), true);
      noteBody.appendChild(row);
    }
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
        container.appendChild(section);
        renderSubscription(section, sub);
        wire(section, sub);
      }
      if (!list.items.length) say("You have no subscriptions.");
      await loadDocuments();
      document.body.dataset.ready = "true";
    } catch (err) {
      say(err.status === 401 ? "Your portal session has expired; open the portal again."
        : err.message, true);
      document.body.dataset.ready = "error";
    }
  }

  start();
})();
