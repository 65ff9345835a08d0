use wyrmhole::Model;

#[derive(Model)]
struct ListMember {
    id: i32,
    list_id: i32,
}

#[derive(Model)]
#[wyrm(has_many(members = ListMember, via = list_id, through = ListMember))]
#[wyrm(has_many(via = list_id))]
#[wyrm(has_many = ListMember)]
#[wyrm(has_many(members = "ListMember", via = list_id))]
#[wyrm(has_many(helpers = ListMember, via = list_id, via = id))]
struct TodoList {
    id: i32,
}

fn main() {}
