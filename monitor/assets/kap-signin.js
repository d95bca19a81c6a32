// Who is signed in, on every dashboard page, with Sign out; and, when the sign-in has ended (idle time,
// sign-out elsewhere, account disabled), a plain warning that actions will be refused until someone signs
// in again. The live view itself keeps running: a monitoring screen never goes blank on its own.
(function () {
    "use strict";
    function bar() {
        let el = document.getElementById("kap-user");
        if (!el) {
            el = document.createElement("div");
            el.id = "kap-user";
            el.className = "kap-user";
            document.body.prepend(el);
        }
        return el;
    }
    function show(me) {
        const el = bar();
        el.textContent = "";
        if (!me.signed_in) {
            el.classList.add("kap-user-ended");
            const link = document.createElement("a");
            link.href = "/signin?next=" + encodeURIComponent(location.pathname);
            link.textContent = "Signed out: actions are refused. Sign in";
            el.appendChild(link);
            return;
        }
        el.classList.remove("kap-user-ended");
        const who = document.createElement("span");
        who.id = "kap-user-name";
        who.textContent = me.name + " (" + me.role + (me.role === "nurse" ? ": " + me.rooms.join(", ") : "") + ")";
        el.appendChild(who);
        if (me.audit) {
            const audit = document.createElement("a");
            audit.href = "/audit";
            audit.textContent = "Audit";
            el.appendChild(audit);
        }
        const form = document.createElement("form");
        form.method = "post";
        form.action = "/signout";
        const out = document.createElement("button");
        out.type = "submit";
        out.id = "kap-signout";
        out.textContent = "Sign out";
        form.appendChild(out);
        el.appendChild(form);
    }
    function check() {
        fetch("/auth/me", {credentials: "same-origin", cache: "no-store"})
            .then((r) => r.json())
            .then(show)
            .catch(() => {});  // the server is restarting: the next check says it
    }
    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", check);
    } else {
        check();
    }
    setInterval(check, 60000);
})();
